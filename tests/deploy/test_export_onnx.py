"""tools/deployment/export_onnx.py and mmaniso.deploy: the exported graph
gives what the PyTorch model's head.forward gives, the tool refuses what it
must.

One export of the SynthFace ResNet18 (half width, 64x64, random weights: no
download) with a dynamic batch serves most tests.
"""

import contextlib
import io
import os.path as osp

import numpy as np
import pytest
import torch
from conftest import REPO, load_tool, random_head_model

pytest.importorskip('onnx')
pytest.importorskip('onnxruntime')

from mmaniso.deploy import (  # noqa: E402
    LandmarkGraph,
    OnnxLandmarkModel,
    export_onnx,
    max_crop_difference,
    run_onnx,
)

CONFIG = osp.join(REPO, 'configs', 'synthface', 'res18_aniso_synthface.py')
INPUT_SIZE = (64, 64)
LIMIT = 1e-4  # of the crop size


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools', 'deployment', 'export_onnx.py')


def build_model(config=CONFIG, mean_shape=True):
    return random_head_model(config, mean_shape)


def save(model, path):
    from mmengine.runner import save_checkpoint

    save_checkpoint(dict(state_dict=model.state_dict()), str(path))
    return str(path)


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory, random_head_checkpoint):
    """The session's random-head checkpoint (conftest.py: build_model's
    model, saved once) and a folder of this module's own for outputs."""
    return dict(
        path=random_head_checkpoint['path'],
        mean_shape=random_head_checkpoint['mean_shape'],
        folder=tmp_path_factory.mktemp('export_onnx'),
    )


@pytest.fixture(scope='module')
def exported(tool, checkpoint):
    """The tool's run with --dynamic-batch over a stale file (--overwrite),
    with tiny latency batches."""
    out = checkpoint['folder'] / 'model.onnx'
    out.write_text('stale')
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = tool.main(
            [CONFIG, checkpoint['path'], '--out', str(out)]
            + ['--dynamic-batch', '--overwrite', '--latency-batches', '1', '5']
            + ['--runs', '1', '--warmup', '0']
        )
    return dict(path=str(out), printed=printed.getvalue(), result=result)


def torch_model(tool, checkpoint):
    """The checkpoint loaded as the tool loads it (init_model + MMEngine)."""
    return tool.load_model(CONFIG, checkpoint['path'])


def test_tool_prints_the_file_parity_and_latencies(exported):
    printed = exported['printed']
    assert f'wrote {exported["path"]}' in printed
    assert 'crops (N, 3, 64, 64)' in printed
    assert 'keypoints normalised to the crop (N, 98, 2)' in printed
    assert printed.rstrip().endswith('(limit 1e-04): ok')
    rows = exported['result']['rows']
    assert [row['batch'] for row in rows] == [1, 5]
    for row in rows:
        assert row['torch_ms'] > 0 and row['onnxruntime_ms'] > 0
        assert row['max_diff_fraction'] < LIMIT
        assert row['max_diff_px'] == pytest.approx(
            row['max_diff_fraction'] * 64
        )
        assert f'{row["batch"]:>5}  ' in printed


def test_overwrite_replaced_the_stale_file(exported):
    import onnx

    onnx.checker.check_model(exported['path'])


@pytest.mark.parametrize('batch', [1, 5])
def test_onnx_runtime_matches_torch(tool, checkpoint, exported, batch):
    model = torch_model(tool, checkpoint)
    crops = tool.make_crops(model, batch, INPUT_SIZE, seed=1)
    with torch.no_grad():
        reference = LandmarkGraph(model)(crops).numpy()
    runtime = OnnxLandmarkModel(exported['path'])
    assert runtime.input_shape == (None, 3, 64, 64)
    output = runtime(crops)
    assert output.shape == (batch, 98, 2)
    pixels, fraction = max_crop_difference(output, reference, INPUT_SIZE)
    assert fraction < LIMIT, (pixels, fraction)
    np.testing.assert_allclose(run_onnx(exported['path'], crops), output)


def test_output_includes_the_mean_shape(tool, checkpoint, exported):
    from mmpose.models.heads import RegressionHead

    model = torch_model(tool, checkpoint)
    crops = tool.make_crops(model, 2, INPUT_SIZE, seed=2)
    with torch.no_grad():
        feats = model.neck(model.backbone(crops))
        dx = RegressionHead.forward(model.head, feats).numpy()
    assert np.abs(dx).max() > 1e-3  # else the check below proves nothing
    output = OnnxLandmarkModel(exported['path'])(crops)
    np.testing.assert_allclose(
        output - dx,
        np.broadcast_to(checkpoint['mean_shape'].numpy(), output.shape),
        atol=1e-5,
    )


def test_metadata_preprocesses_as_the_data_preprocessor(
    tool, checkpoint, exported
):
    model = torch_model(tool, checkpoint)
    rng = np.random.default_rng(3)
    images = rng.integers(0, 256, (2, 64, 64, 3), dtype=np.uint8)
    expected = tool.preprocess(
        model, [torch.from_numpy(i).permute(2, 0, 1) for i in images]
    ).numpy()
    runtime = OnnxLandmarkModel(exported['path'])
    assert runtime.metadata['input_size'] == [64, 64]
    assert runtime.metadata['num_keypoints'] == 98
    assert runtime.metadata['dataset_name'] == 'wflw'
    assert runtime.metadata['bgr_to_rgb'] is True
    assert runtime.metadata['flip_indices'] == list(
        model.dataset_meta['flip_indices']
    )
    np.testing.assert_allclose(runtime.preprocess(images), expected, atol=1e-5)


def test_runner_refuses_crops_of_another_size(exported):
    runtime = OnnxLandmarkModel(exported['path'])
    with pytest.raises(ValueError, match=r'takes crops of shape \(N, 3, 64'):
        runtime(np.zeros((1, 3, 32, 32), np.float32))


# torch 2.14 deprecates the TorchScript exporter that this test asks for.
@pytest.mark.filterwarnings('ignore::DeprecationWarning')
def test_fixed_batch_torchscript_export(tmp_path):
    # The exporter of torch < 2.5 (the MMPose 1.3 stack), and a graph whose
    # batch is fixed.
    model = build_model()
    path = export_onnx(
        model, (3, 3, 64, 64), str(tmp_path / 'fixed.onnx'), dynamo=False
    )
    runtime = OnnxLandmarkModel(path)
    assert runtime.input_shape == (3, 3, 64, 64)
    assert runtime.metadata['exporter'] == 'TorchScript'
    crops = torch.randn(
        3, 3, 64, 64, generator=torch.Generator().manual_seed(4)
    )
    with torch.no_grad():
        reference = LandmarkGraph(model)(crops).numpy()
    _, fraction = max_crop_difference(runtime(crops), reference, INPUT_SIZE)
    assert fraction < LIMIT
    with pytest.raises(ValueError, match='fixed batch of 3 crops.*--dynamic'):
        runtime(crops[:2])


def test_tool_refuses_to_overwrite(tool, checkpoint, tmp_path):
    out = tmp_path / 'model.onnx'
    out.write_text('old')
    with pytest.raises(SystemExit) as err:
        tool.main([CONFIG, checkpoint['path'], '--out', str(out)])
    message = str(err.value)
    assert f'--out {out} already exists' in message
    assert '--overwrite' in message
    assert out.read_text() == 'old'


def test_tool_refuses_a_nan_mean_shape(tool, tmp_path):
    path = save(build_model(mean_shape=False), tmp_path / 'no_mean.pth')
    out = tmp_path / 'model.onnx'
    with pytest.raises(SystemExit) as err:
        tool.main([CONFIG, path, '--out', str(out)])
    message = str(err.value)
    assert message.startswith(f'{path}: MeanShapeRegressionHead.mean_shape')
    assert 'NaN' in message and 'PoseBalancingHook' in message
    assert not out.exists()


def test_export_onnx_refuses_a_nan_mean_shape(tmp_path):
    out = tmp_path / 'model.onnx'
    with pytest.raises(ValueError, match='mean_shape is NaN'):
        export_onnx(build_model(mean_shape=False), (1, 3, 64, 64), str(out))
    assert not out.exists()


def test_tool_refuses_a_checkpoint_of_another_config(tool, tmp_path):
    # The fixture config's ResNet18 is twice as wide as SynthFace's.
    other = osp.join(REPO, 'configs', 'fixture', 'res18_wflw_fixture_aniso.py')
    path = save(build_model(other), tmp_path / 'other.pth')
    with pytest.raises(SystemExit, match='does not fit the model of'):
        tool.main([CONFIG, path, '--out', str(tmp_path / 'model.onnx')])


def test_parity_beyond_the_limit_fails(tool):
    rows = [
        dict(batch=1, max_diff_px=1e-4, max_diff_fraction=1.6e-6),
        dict(batch=32, max_diff_px=0.01, max_diff_fraction=1.6e-4),
    ]
    with pytest.raises(SystemExit, match='FAILED at batch 32'):
        tool.check_parity(rows, 'model.onnx', INPUT_SIZE)
    rows[1]['max_diff_fraction'] = float('nan')
    with pytest.raises(SystemExit, match='FAILED at batch 32'):
        tool.check_parity(rows, 'model.onnx', INPUT_SIZE)
    assert tool.check_parity(rows[:1], 'model.onnx', INPUT_SIZE).endswith(
        ': ok'
    )


def test_tool_refuses_an_input_size_other_than_the_codecs(
    tool, checkpoint, tmp_path
):
    out = tmp_path / 'model.onnx'
    with pytest.raises(SystemExit) as err:
        tool.main(
            [CONFIG, checkpoint['path'], '--out', str(out)]
            + ['--input-size', '32', '32', '--runs', '1', '--warmup', '0']
        )
    message = str(err.value)
    assert '--input-size 32 32 differs from the input size' in message
    assert f'codec, {INPUT_SIZE[0]} {INPUT_SIZE[1]}' in message
    assert not out.exists()  # and no "parity ok" for it
    model = torch_model(tool, checkpoint)
    assert tool.model_input_size(model, [64, 64]) == INPUT_SIZE
    assert tool.model_input_size(model) == INPUT_SIZE


def test_tool_never_exports_onto_its_checkpoint(tool, checkpoint, tmp_path):
    import hashlib
    import shutil

    weights = tmp_path / 'weights.onnx'  # a checkpoint, oddly named
    shutil.copy(checkpoint['path'], weights)
    before = hashlib.sha256(weights.read_bytes()).hexdigest()
    with pytest.raises(SystemExit) as err:
        tool.main([CONFIG, str(weights), '--out', str(weights), '--overwrite'])
    message = str(err.value)
    assert f'--out {weights} is the checkpoint {weights}' in message
    assert '--overwrite' not in message
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == before


@pytest.mark.parametrize('content', [b'', b'not a graph', 'half'])
def test_runner_names_a_corrupt_file_and_the_fix(exported, tmp_path, content):
    path = tmp_path / 'bad.onnx'
    if content == 'half':
        data = open(exported['path'], 'rb').read()
        content = data[: len(data) // 2]
    path.write_bytes(content)
    with pytest.raises(ValueError) as err:
        OnnxLandmarkModel(str(path))
    message = str(err.value)
    assert message.startswith(f'{path}: ONNX Runtime cannot load it')
    assert 'tools/deployment/export_onnx.py' in message


def test_mismatches_read_the_graph_then_its_metadata(exported):
    runtime = OnnxLandmarkModel(exported['path'])
    meta = runtime.metadata
    same = dict(
        input_size=INPUT_SIZE,
        num_keypoints=98,
        dataset_name='wflw',
        flip_indices=meta['flip_indices'],
        mean=meta['mean'],
        std=meta['std'],
        bgr_to_rgb=True,
    )
    assert runtime.mismatches(same) == []
    assert runtime.mismatches(dict(same, dataset_name=None)) == []  # unknown
    wrong = dict(
        input_size=(256, 256),
        num_keypoints=68,
        dataset_name='300w',
        mean=[0.0, 0.0, 0.0],
        bgr_to_rgb=False,
    )
    found = runtime.mismatches(wrong)
    assert found == [
        'input_size: graph [64, 64], config [256, 256]',
        'num_keypoints: graph 98, config 68',
        "dataset_name: graph 'wflw', config '300w'",
        f'mean: graph {meta["mean"]!r}, config [0.0, 0.0, 0.0]',
        'bgr_to_rgb: graph True, config False',
    ]


# ------------------------------------------------- a head that predicts scales
PREDICTED = {
    kind: osp.join(
        REPO, 'configs', 'synthface', f'res18_{name}-predicted-l1_synthface.py'
    )
    for kind, name in (('anisotropic', 'aniso'), ('isotropic', 'iso'))
}


def build_predicting_model(kind):
    """The config's model whose scale layer varies with the image (its
    untrained weights are 0: every scale would be a and b)."""
    model = build_model(PREDICTED[kind])
    gen = torch.Generator().manual_seed(5)
    with torch.no_grad():
        fc = model.head.scale_fc
        fc.weight.copy_(torch.randn(fc.weight.shape, generator=gen) * 0.05)
    return model


@pytest.fixture(scope='module', params=['anisotropic', 'isotropic'])
def predicting(request, tool, tmp_path_factory):
    """A model with predicted scales exported by the tool."""
    kind = request.param
    folder = tmp_path_factory.mktemp(f'scales_{kind}')
    path = save(build_predicting_model(kind), folder / 'model.pth')
    out = folder / 'model.onnx'
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = tool.main(
            [PREDICTED[kind], path, '--out', str(out), '--dynamic-batch']
            + ['--latency-batches', '3', '--runs', '1', '--warmup', '0']
        )
    model = tool.load_model(PREDICTED[kind], path)
    return dict(
        kind=kind,
        model=model,
        path=str(out),
        printed=printed.getvalue(),
        result=result,
    )


def test_a_head_with_scales_exports_them_as_a_second_output(predicting):
    runtime = OnnxLandmarkModel(predicting['path'])
    assert runtime.output_names == ['keypoints', 'scales']
    assert runtime.predicts_scales
    meta = runtime.metadata
    head = predicting['model'].head
    assert meta['predict_scales'] == predicting['kind']
    assert meta['score_scale'] == pytest.approx(head.score_scale)
    assert meta['neighbours'] == head.loss_module.neighbours.tolist()
    printed = predicting['printed']
    assert 'scales along and across in crop pixels (N, 98, 2)' in printed
    assert 'scales: max |ORT - torch| / torch' in printed
    assert printed.rstrip().endswith(': ok')
    (row,) = predicting['result']['rows']
    assert row['max_scale_rel_diff'] < LIMIT


def test_a_head_without_scales_keeps_one_output(exported):
    runtime = OnnxLandmarkModel(exported['path'])
    assert runtime.output_names == ['keypoints']
    assert not runtime.predicts_scales
    assert runtime.metadata['predict_scales'] == 'none'
    crops = np.zeros((1, 3, 64, 64), np.float32)
    assert list(runtime.run(crops)) == ['keypoints']
    with pytest.raises(ValueError, match="has no 'scales' output"):
        runtime.ellipses(runtime(crops), np.ones((1, 98, 2)))


def test_runner_ellipses_match_the_heads_predict(tool, predicting):
    """The parity of the ellipses and scores: ONNX Runtime's outputs
    through OnnxLandmarkModel.ellipses against the PyTorch head's
    predict on the same crops (no box: both in input-crop pixels)."""
    from mmpose.structures import PoseDataSample

    model = predicting['model']
    crops = tool.make_crops(model, 4, INPUT_SIZE, seed=6)
    with torch.no_grad():
        feats = model.neck(model.backbone(crops))
        samples = [PoseDataSample(metainfo=dict(input_size=INPUT_SIZE))] * 4
        preds = model.head.predict(feats, samples, {})
        keypoints, scales = LandmarkGraph(model)(crops)
    runtime = OnnxLandmarkModel(predicting['path'])
    outputs = runtime.run(crops)
    rel = np.abs(outputs['scales'] - scales.numpy()) / scales.numpy()
    assert rel.max() < LIMIT
    ellipses, scores = runtime.ellipses(
        outputs['keypoints'], outputs['scales']
    )
    expected = np.concatenate([p.keypoint_ellipses for p in preds])
    expected_scores = np.concatenate([p.keypoint_scores for p in preds])
    assert ellipses.shape == expected.shape == (4, 98, 3)
    # The scales vary with the image and the landmark, and so do the
    # semi-axes and the angles: the comparison is not of constants.
    assert np.ptp(expected[..., 0]) > 0.1 and np.ptp(expected[..., 2]) > 0.5
    np.testing.assert_allclose(
        ellipses[..., :2], expected[..., :2], rtol=LIMIT
    )
    # Angles of the curve points, taken modulo pi (an axis is a line).
    turn = np.angle(np.exp(2j * (ellipses[..., 2] - expected[..., 2]))) / 2
    assert np.abs(turn).max() < 1e-3
    np.testing.assert_allclose(scores, expected_scores, rtol=LIMIT)
    if predicting['kind'] == 'isotropic':
        np.testing.assert_allclose(ellipses[..., 0], ellipses[..., 1])


def test_parity_of_the_scales_beyond_the_limit_fails(tool):
    rows = [
        dict(
            batch=2,
            max_diff_px=1e-5,
            max_diff_fraction=1e-7,
            max_scale_rel_diff=3e-4,
        )
    ]
    with pytest.raises(SystemExit, match='the scales of model.onnx do not'):
        tool.check_parity(rows, 'model.onnx', INPUT_SIZE)
    rows[0]['max_scale_rel_diff'] = 2e-6
    said = tool.check_parity(rows, 'model.onnx', INPUT_SIZE)
    assert 'scales: max |ORT - torch| / torch = 2.00e-06' in said
