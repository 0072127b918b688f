"""tools/demo.py's scheduling: its trainings go side by side with the cores
split between them, and each result stays with its own run; and its choice
of models: the study's validation winner and L1 on that winner's head.

The trainings themselves are replaced by a stand-in; the real ones are what
``make demo`` runs (README)."""

import os
import os.path as osp
import threading
import time

import pytest
from conftest import REPO, load_tool

from mmaniso.study.runner import TrainTestResult

SCRIPT = osp.join(REPO, 'tools', 'demo.py')


@pytest.fixture
def demo(monkeypatch):
    module = load_tool(SCRIPT)
    # No data, predictions or report: only the scheduling is under test.
    monkeypatch.setattr(module, 'ensure_data', lambda *a: None)
    monkeypatch.setattr(module, 'load_predictions', lambda path: {})
    monkeypatch.setattr(module, 'point_group_nme', lambda *a: {})
    reported = {}
    monkeypatch.setattr(
        module, 'report', lambda args, results: reported.update(results)
    )
    module.reported = reported
    return module


class FakeTraining:
    """Stands in for train_then_test: records how many run at once and
    returns metrics that name the config they came from."""

    def __init__(self, delay=0.3, fail=None):
        self.delay = delay
        self.fail = fail
        self.lock = threading.Lock()
        self.running = 0
        self.most_at_once = 0
        self.envs = {}

    def __call__(self, config, work_dir, *, env=None, **kwargs):
        with self.lock:
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            self.envs[config] = dict(env or {})
        time.sleep(self.delay)
        with self.lock:
            self.running -= 1
        if config == self.fail:
            raise RuntimeError(f'training failed: {config}')
        return TrainTestResult(
            metrics={'config': config},
            metrics_file='',
            checkpoint='',
            seconds=self.delay,
        )


def test_demo_trains_its_runs_side_by_side_with_the_cores_split(
    demo, monkeypatch, tmp_path
):
    for flags, runs in (([], demo.SHORT_RUNS), (['--full'], demo.RUNS)):
        fake = FakeTraining()
        monkeypatch.setattr(demo, 'train_then_test', fake)
        demo.reported.clear()
        demo.main(['--work-dir', str(tmp_path)] + flags)
        assert fake.most_at_once == len(runs)
        threads = str(max(1, (os.cpu_count() or 1) // len(runs)))
        assert {e['OMP_NUM_THREADS'] for e in fake.envs.values()} == {threads}
        # Reported in the order of the runs, each with its own metrics.
        assert list(demo.reported) == [name for name, _ in runs]
        for name, config in runs:
            assert demo.reported[name]['metrics'] == {'config': config}


def test_demo_with_one_job_trains_one_after_another_on_all_cores(
    demo, monkeypatch, tmp_path
):
    fake = FakeTraining(delay=0.05)
    monkeypatch.setattr(demo, 'train_then_test', fake)
    demo.main(['--work-dir', str(tmp_path), '--jobs', '1'])
    assert fake.most_at_once == 1
    threads = str(os.cpu_count() or 1)
    assert {e['OMP_NUM_THREADS'] for e in fake.envs.values()} == {threads}


def test_demo_stops_with_the_error_of_a_failed_training(
    demo, monkeypatch, tmp_path
):
    failing = demo.RUNS[1][1]
    monkeypatch.setattr(
        demo, 'train_then_test', FakeTraining(delay=0.05, fail=failing)
    )
    with pytest.raises(RuntimeError, match=failing):
        demo.main(['--work-dir', str(tmp_path)])
    assert demo.reported == {}


def test_demo_refuses_zero_jobs(demo, tmp_path):
    with pytest.raises(SystemExit, match='--jobs'):
        demo.main(['--work-dir', str(tmp_path), '--jobs', '0'])


def test_demo_best_variant_is_the_studys_validation_winner(demo):
    # The committed run records decide the demo's variant; a demo that
    # drifted from them would tell another finding than docs/study.md.
    from mmaniso.study import evidence as ev

    records = osp.join(REPO, 'results', 'synthface_evidence')
    assert demo.BEST_VARIANT == ev.choose_best(records).config


def test_demo_twin_differs_from_the_best_variant_in_a_and_b_only(demo):
    from mmengine.config import Config

    configs = dict(demo.RUNS)
    best = Config.fromfile(osp.join(REPO, configs['best']))
    twin = Config.fromfile(osp.join(REPO, configs['twin']))
    assert (best.model.head.loss.a, best.model.head.loss.b) == (5.0, 3.0)
    assert (twin.model.head.loss.a, twin.model.head.loss.b) == (3.0, 3.0)
    # Same loss form, head, sampler, hooks and budget: only a differs.
    twin.model.head.loss.a = 5.0
    assert twin.model.to_dict() == best.model.to_dict()
    assert twin.train_dataloader.to_dict() == best.train_dataloader.to_dict()
    assert twin.custom_hooks == best.custom_hooks
    assert twin.train_cfg.to_dict() == best.train_cfg.to_dict()


def test_demo_report_shows_along_and_across_where_the_metrics_have_them(
    monkeypatch, tmp_path, capsys
):
    """The table reads the metric's NME_along/NME_across; a run recorded
    before the metric reported them shows '-'."""
    import argparse
    import json

    from mmaniso.evaluation import ced_plot

    module = load_tool(SCRIPT)
    monkeypatch.setattr(ced_plot, 'plot_ced', lambda *a, **k: None)
    monkeypatch.setattr(module, 'draw_predictions', lambda *a, **k: None)
    nme_file = tmp_path / 'wflw.nme.json'
    nme_file.write_text(json.dumps([dict(nme=0.05)]))
    metrics = {'NME': 5.0, 'FR@0.1': 1.0, 'AUC@0.1': 0.5}
    results = {
        name: dict(
            metrics=dict(metrics, NME_along=3.25, NME_across=2.5)
            if name == 'paper'
            else metrics,
            group_nme=dict(curve=0.055, corners=0.04),
            nme_file=str(nme_file),
            seconds=10.0,
        )
        for name, _ in module.RUNS
    }
    args = argparse.Namespace(work_dir=str(tmp_path), data_root='')
    module.report(args, results)
    lines = (tmp_path / 'results.txt').read_text().splitlines()
    assert 'Lower is better' in lines[0]
    head = next(i for i, line in enumerate(lines) if line.startswith('model'))
    lines = lines[head - 1 :]
    assert lines[1].split()[4:8] == ['curve', 'pts', 'along', 'across']
    assert lines[2].split()[:8] == [
        'paper',
        '5.00',
        '1.00',
        '0.5000',
        '5.50',
        '3.25',
        '2.50',
        '4.00',
    ]
    assert lines[3].split()[4:7] == ['5.50', '-', '-']
    assert 'along' in capsys.readouterr().out


def test_predictions_are_read_without_running_code(tmp_path):
    # test_preds.pkl sits in a work dir a user may have been handed: it is
    # read like a checkpoint, and what tools/test.py --out writes still loads.
    import pickle

    import numpy as np

    from mmaniso.checkpoint import CheckpointRefusedError
    from mmaniso.testing.checkpoints import RunsCode

    module = load_tool(SCRIPT)
    good = tmp_path / 'good.pkl'
    keypoints = np.arange(6, dtype=np.float32).reshape(1, 3, 2)
    good.write_bytes(pickle.dumps(
        [dict(id=7, img_path='a.jpg',
              pred_instances=dict(keypoints=keypoints))]
    ))  # fmt: skip
    preds = module.load_predictions(str(good))
    assert list(preds) == [7]
    np.testing.assert_array_equal(preds[7], keypoints[0])
    marker = tmp_path / 'pwned'
    evil = tmp_path / 'evil.pkl'
    evil.write_bytes(pickle.dumps([RunsCode(marker)]))
    with pytest.raises(CheckpointRefusedError, match='evil.pkl'):
        module.load_predictions(str(evil))
    assert not marker.exists()


def test_short_schedule_keeps_the_learning_rate_steps(demo):
    # 15 epochs step after 11 and 14; 8 epochs at the same fractions.
    options = demo.schedule_options(8)
    assert 'param_scheduler.1.milestones=[6,7]' in options
    assert 'param_scheduler.1.end=8' in options
    assert 'param_scheduler.1.milestones=[11,14]' in demo.schedule_options(15)
    args = demo.parse_args([])
    assert (args.num_train, args.epochs, args.runs) == (
        1000,
        8,
        demo.SHORT_RUNS,
    )
    full = demo.parse_args(['--full'])
    assert (full.num_train, full.epochs, full.runs) == (2000, None, demo.RUNS)
    assert full.work_dir != args.work_dir and full.data_root != args.data_root


def test_a_quiet_training_still_prints_a_line(demo, capsys):
    class Show:
        last = None
        state = ''

    out = ''
    with demo.Heartbeat({'twin': Show(), 'aniso': Show()}, period=0.05):
        # Until two lines came: a busy machine may wake the thread late.
        deadline = time.monotonic() + 300
        while out.count('[demo]') < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
            out += capsys.readouterr().out
    assert out.count('[demo]') >= 2
    assert 'twin starting, aniso starting' in out


def test_report_names_the_best_model_and_its_infer_command(demo):
    results = {
        'L1': dict(metrics={'NME': 5.5}, config='configs/a.py',
                   checkpoint='work_dirs/demo/L1/epoch_8.pth'),
        'aniso': dict(metrics={'NME': 4.9}, config='configs/b.py',
                      checkpoint='work_dirs/demo/aniso/epoch_8.pth'),
    }  # fmt: skip
    assert demo.best_model(results) == 'aniso'
    command = demo.infer_command(results['aniso'])
    assert command.startswith(
        'python tools/infer.py configs/b.py work_dirs/demo/aniso/epoch_8.pth'
    )


def test_predictions_picture_has_a_panel_per_model_and_face(demo, tmp_path):
    import json

    import cv2
    import numpy as np

    (tmp_path / 'images').mkdir()
    anns, images = [], []
    for i in range(2):
        cv2.imwrite(str(tmp_path / 'images' / f'{i}.jpg'),
                    np.full((64, 64, 3), 100, np.uint8))  # fmt: skip
        images.append(dict(id=i, file_name=f'{i}.jpg'))
        points = [20.0, 30.0, 2, 40.0, 30.0, 2]
        anns.append(dict(id=10 + i, image_id=i, keypoints=points))
    ann = tmp_path / 'clean.json'
    ann.write_text(json.dumps(dict(images=images, annotations=anns)))
    preds = {10: np.array([[21.0, 31], [41, 29]]),
             11: np.array([[19.0, 30], [40, 32]])}  # fmt: skip
    results = {'twin': dict(preds=preds), 'aniso': dict(preds=preds)}
    out = tmp_path / 'pred.png'
    demo.draw_predictions(str(out), str(tmp_path), str(ann), results, num=2)
    picture = cv2.imread(str(out))
    # Two faces down, two models across, each panel 3.2 in at 80 dpi.
    assert picture.shape[0] >= 2 * 200 and picture.shape[1] >= 2 * 200
