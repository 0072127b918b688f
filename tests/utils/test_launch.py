"""Tests of the training guards tools/train.py sets up before the Runner:
resume checks and the hooks added to every config."""

import os.path as osp

import pytest
from conftest import FIXTURE_CONFIG, data_root_options, load_tool
from mmengine.config import Config

from mmaniso.utils.launch import add_training_guards, check_resume


def _cfg(work, **extra):
    return Config(dict(work_dir=str(work), launcher='none', **extra))


def test_resume_without_any_checkpoint_is_refused(tmp_path):
    # MMEngine would log "Auto resumed from ... None" and train from
    # scratch.
    work = tmp_path / 'work'
    with pytest.raises(SystemExit) as err:
        check_resume(_cfg(work, resume=True))
    message = str(err.value)
    assert f'work dir {work}' in message
    assert 'Drop --resume' in message and '--resume path/to' in message


def test_resume_with_an_empty_pointer_names_the_file(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'epoch_1.pth').write_bytes(b'x')
    (work / 'last_checkpoint').write_text('  \n')
    with pytest.raises(SystemExit) as err:
        check_resume(_cfg(work, resume=True))
    message = str(err.value)
    assert f'{work / "last_checkpoint"} is empty' in message
    assert 'epoch_1.pth' in message  # what it could resume from instead


def test_resume_with_a_dangling_pointer_or_missing_file(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'last_checkpoint').write_text(str(work / 'epoch_9.pth'))
    with pytest.raises(SystemExit, match='epoch_9.pth, which does not'):
        check_resume(_cfg(work, resume=True))
    named = str(tmp_path / 'nowhere.pth')
    with pytest.raises(SystemExit, match='nowhere.pth: no such checkpoint'):
        check_resume(_cfg(work, resume=True, load_from=named))


def test_resume_with_a_checkpoint_passes(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    ckpt = work / 'epoch_2.pth'
    ckpt.write_bytes(b'x')
    (work / 'last_checkpoint').write_text(str(ckpt))
    assert check_resume(_cfg(work, resume=True)) == str(ckpt)
    assert check_resume(_cfg(work, resume=True, load_from=str(ckpt))) == (
        str(ckpt)
    )
    url = 'https://example.org/epoch_2.pth'
    assert check_resume(_cfg(work, resume=True, load_from=url)) == url
    assert check_resume(_cfg(tmp_path / 'fresh')) is None  # no --resume


def test_every_config_gets_the_guards():
    cfg = Config.fromfile(FIXTURE_CONFIG)  # MMPose's recipe underneath
    added = add_training_guards(cfg)
    kinds = [h['type'] for h in cfg.custom_hooks]
    assert 'NonFiniteLossHook' in kinds
    assert 'AnnotationFingerprintHook' in kinds
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.checkpoint.interval == 1  # settings kept
    assert set(added) == {
        'NonFiniteLossHook',
        'AnnotationFingerprintHook',
        'AtomicCheckpointHook',
    }
    # Idempotent, and a hook the config already sets keeps its settings.
    cfg.custom_hooks[-1] = dict(
        type='AnnotationFingerprintHook', accept_changed_annotations=True
    )
    assert add_training_guards(cfg) == []
    assert cfg.custom_hooks[-1]['accept_changed_annotations'] is True


def test_train_main_refuses_a_resume_with_nothing_to_resume(
    wflw_fixture, tmp_path
):
    train_tool = load_tool('tools', 'train.py')
    work = tmp_path / 'work'
    argv = [FIXTURE_CONFIG, '--work-dir', str(work), '--resume',
            '--cfg-options', *data_root_options(wflw_fixture)]  # fmt: skip
    with pytest.raises(SystemExit, match='no run to continue'):
        train_tool.main(argv)
    assert not osp.exists(work / 'epoch_1.pth')


def test_a_plain_mmpose_recipe_gets_the_guards(tmp_path):
    config = tmp_path / 'plain.py'
    config.write_text(
        "_base_ = ['mmpose::face_2d_keypoint/topdown_regression/wflw/"
        "td-reg_res50_8xb64-210e_wflw-256x256.py']\n"
    )
    cfg = Config.fromfile(str(config))
    interval = cfg.default_hooks.checkpoint.interval
    add_training_guards(cfg)
    assert [h['type'] for h in cfg.custom_hooks][-2:] == [
        'NonFiniteLossHook',
        'AnnotationFingerprintHook',
    ]
    assert cfg.default_hooks.checkpoint.type == 'AtomicCheckpointHook'
    assert cfg.default_hooks.checkpoint.interval == interval


def test_the_tools_quiet_only_the_known_third_party_notices():
    import warnings as w

    from mmaniso.utils.launch import quiet_known_warnings

    with w.catch_warnings(record=True) as caught:
        w.simplefilter('always')
        quiet_known_warnings()
        w.warn('pkg_resources is deprecated. See', UserWarning, stacklevel=1)
        w.warn('The metainfo config file x', UserWarning, stacklevel=1)
        w.warn('something a user must see', UserWarning, stacklevel=1)
    assert [str(c.message) for c in caught] == ['something a user must see']


def test_face_metric_sets_its_prefix_so_mmengine_does_not_warn():
    from mmaniso.evaluation import FaceLandmarkMetric

    metric = FaceLandmarkMetric(norm='inter_ocular')
    assert metric.prefix == ''


def _numpy_refuses_one_element_int() -> bool:
    import numpy as np

    try:
        int(np.array([1]))
    except TypeError:
        return True
    return False


def test_drawing_probe_agrees_with_numpy():
    # The cause, checked apart: MMPose's OpenCV backend calls int() on a
    # one-element radius array.
    from mmaniso.utils import launch

    refused = _numpy_refuses_one_element_int()
    assert launch.opencv_drawing_works() is not refused


@pytest.mark.parametrize('works', [True, False])
def test_visualizer_switches_to_matplotlib_only_where_opencv_fails(
    monkeypatch, works
):
    from mmaniso.utils import launch

    monkeypatch.setattr(launch, 'opencv_drawing_works', lambda: works)
    cfg = Config.fromfile(FIXTURE_CONFIG)
    line = launch.drawable_visualizer(cfg)
    backend = cfg.visualizer.get('backend', 'opencv')
    if works:
        assert line is None and backend == 'opencv'
    else:
        assert 'matplotlib' in line and backend == 'matplotlib'
    # A backend the config chose other than OpenCV is left alone.
    cfg.visualizer.backend = 'matplotlib'
    assert launch.drawable_visualizer(cfg) is None


def test_the_chosen_backend_draws_a_face(tmp_path):
    # The visualiser as tools/test.py --show-dir builds it, drawing every
    # keypoint of a prediction on this stack.
    import numpy as np
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample
    from mmpose.visualization import PoseLocalVisualizer

    from mmaniso.utils import launch

    cfg = Config.fromfile(FIXTURE_CONFIG)
    launch.drawable_visualizer(cfg)
    vis = PoseLocalVisualizer(
        name='drawing_test', radius=2,
        backend=cfg.visualizer.get('backend', 'opencv'),
    )  # fmt: skip
    vis.set_dataset_meta(dict(num_keypoints=3, dataset_name='three'))
    sample = PoseDataSample()
    sample.pred_instances = InstanceData(
        keypoints=np.array([[[10.0, 10], [30, 20], [50, 40]]]),
        keypoint_scores=np.ones((1, 3)),
    )
    image = np.zeros((64, 64, 3), np.uint8)
    out = tmp_path / 'face.png'
    vis.add_datasample(
        'face', image, data_sample=sample, draw_gt=False, kpt_thr=0.0,
        out_file=str(out),
    )  # fmt: skip
    import cv2

    drawn = cv2.imread(str(out))
    assert drawn is not None and drawn.shape[:2] == (64, 64)
    for x, y in [(10, 10), (30, 20), (50, 40)]:
        assert drawn[y, x].max() > 0  # a keypoint was drawn there
    assert drawn[60, 5].max() == 0  # and not everywhere
