"""tools/analysis_tools/uncertainty_report.py and plot_learned_scales.py."""

import os.path as osp

import numpy as np
import pytest
import torch
from conftest import LEARNED_HEAD_CONFIG, REPO, load_tool, run_tool

REPORT = osp.join(REPO, 'tools', 'analysis_tools', 'uncertainty_report.py')
PICTURE = osp.join(REPO, 'tools', 'analysis_tools', 'plot_learned_scales.py')
PNG_MAGIC = b'\x89PNG\r\n\x1a\n'


def write_predictions(path, with_ellipses=True):
    rng = np.random.default_rng(0)
    n, k = 60, 5
    a = rng.uniform(1, 4, (n, k))
    b = rng.uniform(0.5, 2, (n, k))
    angle = rng.uniform(-3, 3, (n, k))
    ellipses = np.stack([a, b, angle], -1)
    residual = rng.standard_normal((n, k, 2)) * np.sqrt(a * b)[..., None]
    arrays = dict(
        ids=np.arange(n),
        residual=residual.astype(np.float16),
        norm=np.full(n, 30.0, np.float32),
    )
    if with_ellipses:
        arrays['ellipses'] = ellipses.astype(np.float32)
    np.savez_compressed(path, **arrays)
    return arrays


def test_report_matches_the_functions_and_writes_plot(tmp_path):
    from mmaniso.evaluation.uncertainty import (
        auroc,
        ellipse_coverage,
        normalised_radius,
    )

    pred = tmp_path / 'x.pred.npz'
    arrays = write_predictions(pred)
    tool = load_tool(REPORT)
    png, js = tmp_path / 'rel.png', tmp_path / 'rep.json'
    figures = tool.main(
        [
            str(pred),
            '--distance',
            'squared',
            '--plot',
            str(png),
            '--json',
            str(js),
        ]
    )
    residual = arrays['residual'].astype(np.float64)
    ellipses = arrays['ellipses'].astype(np.float64)
    rho = normalised_radius(residual, ellipses)
    assert figures['Cover@2'] == pytest.approx(ellipse_coverage(rho)[2.0])
    assert figures['Expected@1'] == pytest.approx(1 - np.exp(-0.5))
    nme = np.linalg.norm(residual, axis=-1).mean(-1) / 30.0
    scale = np.sqrt(ellipses[..., 0] * ellipses[..., 1]).mean(-1) / 30.0
    assert figures['AUROC@8'] == pytest.approx(auroc(scale, nme > 0.08))
    assert png.read_bytes()[:8] == PNG_MAGIC and js.is_file()
    # An existing output is refused, not overwritten.
    proc = run_tool([REPORT, pred, '--plot', png])
    assert proc.returncode != 0 and 'already exists' in proc.stderr


def test_report_refuses_predictions_without_ellipses(tmp_path):
    pred = tmp_path / 'x.pred.npz'
    write_predictions(pred, with_ellipses=False)
    proc = run_tool([REPORT, pred])
    assert proc.returncode != 0
    assert 'no ellipses array' in proc.stderr and 'predict_scales' in (
        proc.stderr
    )


def test_learned_scales_picture(tmp_path):
    from mmaniso.models.losses import AnisotropicLoss
    from mmaniso.synthface.face_template import mean_face

    config = tmp_path / 'cfg.py'
    config.write_text(LEARNED_HEAD_CONFIG.format(scales='learned'))
    loss = AnisotropicLoss(
        'wflw', scales='learned', weighting='normalised', input_size=(64, 64)
    )
    with torch.no_grad():
        loss.scale_params[:, 0] += 0.4  # along grows
    mean = torch.as_tensor(mean_face(98) * 0.3 + 0.5, dtype=torch.float32)
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(
        dict(
            state_dict={
                'head.loss_module.scale_params': loss.scale_params.detach(),
                'head.mean_shape': mean,
            }
        ),
        ckpt,
    )
    out = tmp_path / 'pic.png'
    proc = run_tool([PICTURE, config, ckpt, '--out', out])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert out.read_bytes()[:8] == PNG_MAGIC
    tool = load_tool(PICTURE)
    points, fixed, learned = tool.mean_face_ellipses(loss, mean)
    assert fixed[5, :2].tolist() == pytest.approx([5.0, 3.0])
    want = 0.3 + (5.0 - 0.3) * np.exp(0.4)
    assert learned[5, 0] == pytest.approx(want, rel=1e-5)
    assert learned[5, 2] == pytest.approx(fixed[5, 2])
    proc = run_tool([PICTURE, config, ckpt, '--out', out])
    assert proc.returncode != 0 and 'already exists' in proc.stderr
