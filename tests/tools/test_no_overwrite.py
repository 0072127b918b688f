"""tools/train.py and tools/test.py never overwrite earlier results silently.

The checks run before any model is built, so they are called directly here
(or through the tools' ``main`` with a config that is never trained).
"""

import os
import os.path as osp

import pytest
from conftest import FIXTURE_CONFIG, data_root_options, load_tool
from mmengine.config import Config

from mmaniso.utils.launch import (
    find_checkpoints,
    guard_work_dir,
    has_url_scheme,
)


def _tool(name):
    return load_tool('tools', f'{name}.py')


@pytest.fixture(scope='module')
def test_tool():
    return _tool('test')


@pytest.fixture(scope='module')
def train_tool():
    return _tool('train')


def _existing(path, text='old'):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return str(path)


# ------------------------------------------------------------ tools/test.py
@pytest.mark.parametrize('option, name', [
    ('--out', 'preds.pkl'),
    ('--metrics-out', 'metrics.json'),
])  # fmt: skip
def test_test_refuses_an_existing_output_file(test_tool, tmp_path, option,
                                              name):  # fmt: skip
    path = _existing(tmp_path / name)
    args = test_tool.parse_args([FIXTURE_CONFIG, 'ckpt.pth', option, path])
    with pytest.raises(SystemExit) as err:
        test_tool.check_outputs(args)
    message = str(err.value)
    assert f'{option} {path} already exists' in message
    assert '--overwrite' in message
    args = test_tool.parse_args(
        [FIXTURE_CONFIG, 'ckpt.pth', option, path, '--overwrite']
    )
    test_tool.check_outputs(args)  # allowed now
    assert open(path).read() == 'old'  # the check itself writes nothing


def test_test_new_output_files_pass(test_tool, tmp_path):
    args = test_tool.parse_args([
        FIXTURE_CONFIG, 'ckpt.pth', '--out', str(tmp_path / 'p.pkl'),
        '--metrics-out', str(tmp_path / 'm.json'),
    ])  # fmt: skip
    test_tool.check_outputs(args)


def test_test_main_refuses_before_anything_is_built(test_tool, tmp_path):
    # The checkpoint does not exist and no data is there: the refusal of
    # the output file comes first, so nothing was loaded or built.
    path = _existing(tmp_path / 'metrics.json')
    with pytest.raises(SystemExit) as err:
        test_tool.main(
            [FIXTURE_CONFIG, str(tmp_path / 'no.pth'), '--metrics-out', path]
        )
    assert f'--metrics-out {path} already exists' in str(err.value)


def _test_cfg(evaluator):
    return Config(dict(test_evaluator=evaluator, default_hooks=dict()))


@pytest.mark.parametrize('checkpoint', [
    'https://download.openmmlab.com/x/epoch_1.pth',
    'http://127.0.0.1:8000/epoch_1.pth',
    's3://bucket/epoch_1.pth',
    'open-mmlab://resnet18',
    'openmmlab://resnet18',
    'torchvision://resnet18',
    'mmcls://resnet18',
    'modelzoo://resnet18',
    'pavi://model/1',
    'petrel://bucket/epoch_1.pth',
])  # fmt: skip
def test_test_lets_checkpoint_urls_through(test_tool, checkpoint):
    assert has_url_scheme(checkpoint)
    args = test_tool.parse_args([FIXTURE_CONFIG, checkpoint])
    cfg = test_tool.merge_args(_test_cfg(dict(type='NME')), args)
    assert cfg.load_from == checkpoint


def test_test_missing_local_checkpoint_is_reported(test_tool, tmp_path):
    missing = str(tmp_path / 'epoch_9.pth')
    assert not has_url_scheme(missing)
    assert not has_url_scheme('C:/runs/epoch_9.pth')
    args = test_tool.parse_args([FIXTURE_CONFIG, missing])
    with pytest.raises(SystemExit, match=f'checkpoint not found: {missing}'):
        test_tool.merge_args(_test_cfg(dict(type='NME')), args)


def test_test_overwrite_reaches_every_face_metric(test_tool, tmp_path):
    checkpoint = _existing(tmp_path / 'epoch_1.pth')
    evaluator = [
        dict(type='FaceLandmarkMetric', outfile_prefix='a'),
        dict(type='mmaniso.FaceLandmarkMetric'),
        dict(type='NME'),
        dict(
            type='Evaluator',
            metrics=[dict(type='mmpose.FaceLandmarkMetric')],
        ),
    ]
    args = test_tool.parse_args([FIXTURE_CONFIG, checkpoint, '--overwrite'])
    cfg = test_tool.merge_args(_test_cfg(evaluator), args)
    metrics = cfg.test_evaluator
    assert [m.get('overwrite') for m in metrics[:3]] == [True, True, None]
    assert metrics[3]['metrics'][0]['overwrite'] is True
    # Without the flag nothing is set.
    args = test_tool.parse_args([FIXTURE_CONFIG, checkpoint])
    cfg = test_tool.merge_args(_test_cfg(evaluator), args)
    assert 'overwrite' not in cfg.test_evaluator[0]


def test_test_refuses_existing_metric_outputs_up_front(test_tool, tmp_path):
    checkpoint = _existing(tmp_path / 'epoch_1.pth')
    prefix = str(tmp_path / 'out' / 'wflw')
    json_file = _existing(tmp_path / 'out' / 'wflw.nme.json')
    evaluator = dict(type='FaceLandmarkMetric', outfile_prefix=prefix)
    args = test_tool.parse_args([FIXTURE_CONFIG, checkpoint])
    with pytest.raises(SystemExit) as err:
        test_tool.merge_args(_test_cfg(dict(evaluator)), args)
    assert f'{json_file} already exists' in str(err.value)
    assert '--overwrite' in str(err.value)
    args = test_tool.parse_args([FIXTURE_CONFIG, checkpoint, '--overwrite'])
    cfg = test_tool.merge_args(_test_cfg(dict(evaluator)), args)
    assert cfg.test_evaluator.overwrite is True


# ----------------------------------------------------------- tools/train.py
def _old_run(work):
    """An earlier run's checkpoints, each holding its own name."""
    work.mkdir(parents=True, exist_ok=True)
    for name in ('epoch_1.pth', 'epoch_2.pth', 'best_NME_epoch_2.pth'):
        (work / name).write_text(name)
    (work / 'last_checkpoint').write_text(str(work / 'epoch_2.pth'))
    (work / '20250101_000000').mkdir()  # its log folder, left in place
    return sorted(os.listdir(work))


def _train_cfg(work, **extra):
    return Config(dict(work_dir=str(work), launcher='none', **extra))


def test_train_refuses_a_work_dir_with_checkpoints(tmp_path):
    work = tmp_path / 'work'
    before = _old_run(work)
    with pytest.raises(SystemExit) as err:
        guard_work_dir(_train_cfg(work), overwrite=False)
    message = str(err.value)
    assert f'work dir {work} already holds checkpoints' in message
    for name in ('best_NME_epoch_2.pth', 'epoch_1.pth', 'epoch_2.pth',
                 'last_checkpoint', '--resume', '--work-dir',
                 '--overwrite', 'previous_<timestamp>'):  # fmt: skip
        assert name in message
    assert sorted(os.listdir(work)) == before  # nothing touched


def test_train_pointer_file_alone_counts(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    (work / 'last_checkpoint').write_text('/elsewhere/epoch_3.pth')
    assert find_checkpoints(str(work)) == ['last_checkpoint']
    with pytest.raises(SystemExit, match='last_checkpoint'):
        guard_work_dir(_train_cfg(work), overwrite=False)


def test_train_fresh_or_resumed_work_dir_passes(tmp_path):
    assert guard_work_dir(_train_cfg(tmp_path / 'new'), False) is None
    work = tmp_path / 'work'
    before = _old_run(work)
    assert guard_work_dir(_train_cfg(work, resume=True), False) is None
    assert sorted(os.listdir(work)) == before
    with pytest.raises(SystemExit, match='cannot be combined with --resume'):
        guard_work_dir(_train_cfg(work, resume=True), True)


def test_train_overwrite_moves_the_old_run_aside(tmp_path):
    work = tmp_path / 'work'
    _old_run(work)
    target = guard_work_dir(_train_cfg(work), overwrite=True)
    assert osp.dirname(target) == str(work)
    assert osp.basename(target).startswith('previous_')
    # The work dir holds no checkpoint a new run could be mixed with...
    assert find_checkpoints(str(work)) == []
    assert sorted(os.listdir(work)) == sorted(
        ['20250101_000000', osp.basename(target)]
    )
    # ...and nothing was lost: every file moved, content intact, the
    # pointer following the checkpoint it names.
    for name in ('epoch_1.pth', 'epoch_2.pth', 'best_NME_epoch_2.pth'):
        assert open(osp.join(target, name)).read() == name
    pointer = open(osp.join(target, 'last_checkpoint')).read()
    assert pointer == osp.join(target, 'epoch_2.pth')
    # A second old run within the same second gets a folder of its own.
    _old_run(tmp_path / 'again')
    first = guard_work_dir(_train_cfg(tmp_path / 'again'), True)
    (tmp_path / 'again' / 'epoch_1.pth').write_text('newer')
    second = guard_work_dir(_train_cfg(tmp_path / 'again'), True)
    assert first != second
    assert open(osp.join(first, 'epoch_1.pth')).read() == 'epoch_1.pth'
    assert open(osp.join(second, 'epoch_1.pth')).read() == 'newer'


def test_train_overwrite_keeps_a_load_from_it_would_move(tmp_path):
    work = tmp_path / 'work'
    before = _old_run(work)
    cfg = _train_cfg(work, load_from=str(work / 'epoch_2.pth'))
    with pytest.raises(SystemExit, match='load_from=.*epoch_2.pth'):
        guard_work_dir(cfg, overwrite=True)
    assert sorted(os.listdir(work)) == before


def test_train_overwrite_moves_on_rank_0_only(tmp_path, monkeypatch):
    work = tmp_path / 'work'
    before = _old_run(work)
    monkeypatch.setenv('RANK', '1')
    cfg = _train_cfg(work)
    cfg.launcher = 'pytorch'
    assert guard_work_dir(cfg, overwrite=True) is None
    assert sorted(os.listdir(work)) == before
    with pytest.raises(SystemExit, match='already holds checkpoints'):
        guard_work_dir(cfg, overwrite=False)  # every rank refuses


def test_train_main_refuses_before_the_runner(
    train_tool, wflw_fixture, tmp_path
):
    work = tmp_path / 'work'
    before = _old_run(work)
    argv = [FIXTURE_CONFIG, '--work-dir', str(work), '--cfg-options',
            *data_root_options(wflw_fixture)]  # fmt: skip
    with pytest.raises(SystemExit, match='already holds checkpoints'):
        train_tool.main(argv)
    assert sorted(os.listdir(work)) == before
    args = train_tool.parse_args(argv + ['--overwrite'])
    assert args.overwrite is True


# ------------------------------------------- no tool writes onto its inputs
def test_same_file_through_spellings_and_links(tmp_path):
    from mmaniso.utils.output_paths import inputs_written_by, is_same_file

    original = tmp_path / 'photo.png'
    original.write_bytes(b'pixels')
    twin = tmp_path / 'twin.png'
    twin.write_bytes(b'pixels')  # same bytes, another file
    os.symlink(original, tmp_path / 'soft.png')
    os.link(original, tmp_path / 'hard.png')
    (tmp_path / 'sub').mkdir()
    spelled = str(tmp_path / 'sub' / '..' / 'photo.png')
    for alias in (spelled, tmp_path / 'soft.png', tmp_path / 'hard.png'):
        assert is_same_file(str(alias), str(original)), alias
    assert not is_same_file(str(twin), str(original))
    assert not is_same_file(str(tmp_path / 'new.png'), str(original))
    # A dangling link to where an input is: resolved by path.
    os.symlink(tmp_path / 'later.json', tmp_path / 'dangling.json')
    assert is_same_file(
        str(tmp_path / 'dangling.json'), str(tmp_path / 'later.json')
    )
    clashes = inputs_written_by(
        [('--out', str(tmp_path / 'hard.png')), ('--x', None),
         ('--y', str(twin))],
        [('the image', str(original)), ('the boxes', None)],
    )  # fmt: skip
    assert clashes == [
        (('--out', str(tmp_path / 'hard.png')), ('the image', str(original)))
    ]


@pytest.mark.parametrize('option', ['--out', '--metrics-out'])
def test_test_never_writes_onto_its_checkpoint_or_config(
    test_tool, tmp_path, option
):
    checkpoint = _existing(tmp_path / 'epoch_1.pth', 'weights')
    name = 'x.pkl' if option == '--out' else 'x.json'
    link = tmp_path / name
    os.link(checkpoint, link)  # another name of the checkpoint
    args = test_tool.parse_args(
        [FIXTURE_CONFIG, checkpoint, option, str(link), '--overwrite']
    )
    with pytest.raises(SystemExit) as err:
        test_tool.check_outputs(args)
    message = str(err.value)
    assert f'{option} {link} is the checkpoint {checkpoint}' in message
    assert '--overwrite' not in message
    args = test_tool.parse_args(
        [FIXTURE_CONFIG, checkpoint, '--metrics-out', FIXTURE_CONFIG,
         '--overwrite']
    )  # fmt: skip
    with pytest.raises(SystemExit, match=r'is the config .*No option'):
        test_tool.check_outputs(args)
    assert open(checkpoint).read() == 'weights'


def test_test_never_writes_onto_its_annotation_file(test_tool, tmp_path):
    checkpoint = _existing(tmp_path / 'epoch_1.pth')
    ann = _existing(tmp_path / 'data' / 'annotations' / 'test.json', '[]')
    cfg = _test_cfg(dict(type='NME'))
    cfg.test_dataloader = dict(
        dataset=dict(
            data_root=str(tmp_path / 'data'), ann_file='annotations/test.json'
        )
    )
    args = test_tool.parse_args(
        [FIXTURE_CONFIG, checkpoint, '--metrics-out', ann, '--overwrite']
    )
    with pytest.raises(SystemExit) as err:
        test_tool.merge_args(cfg, args)
    assert f'is the test annotation file {ann}' in str(err.value)
    assert open(ann).read() == '[]'


def _analysis(name):
    folder = (
        'analysis_tools'
        if name in ('plot_ced', 'show_point_types')
        else 'misc'
    )
    return load_tool('tools', folder, f'{name}.py')


def test_plot_tools_never_write_onto_their_inputs(tmp_path):
    import json

    import cv2
    import numpy as np

    # plot_ced: --out is one of the NME files it plots.
    nme = _existing(tmp_path / 'a.nme.json', json.dumps([0.05, 0.07]))
    with pytest.raises(SystemExit, match=f'--out {nme} is the NME file'):
        _analysis('plot_ced').main([nme, '--out', nme])
    assert json.loads(open(nme).read()) == [0.05, 0.07]
    # convergence: --out is a training log of the study.
    log = tmp_path / 'study' / 'cfg' / 'seed0' / 'run' / 'vis_data'
    scalars = _existing(log / 'scalars.json', '{"step": 1, "NME": 0.1}\n')
    with pytest.raises(SystemExit, match='is the training log'):
        _analysis('convergence').main(
            [str(tmp_path / 'study'), '--threshold', '0.2', '--out', scalars]
        )
    assert open(scalars).read() == '{"step": 1, "NME": 0.1}\n'
    # detection_rate: --out is the --truth file.
    image = str(tmp_path / 'flat.png')
    cv2.imwrite(image, np.full((40, 60, 3), 128, np.uint8))
    truth = _existing(tmp_path / 'truth.json', '{"flat.png": []}')
    with pytest.raises(SystemExit, match='is the --truth file'):
        _analysis('detection_rate').main(
            [image, '--truth', truth, '--out', truth]
        )
    assert open(truth).read() == '{"flat.png": []}'
    # show_point_types: --out is the photograph it draws on.
    ann = _existing(
        tmp_path / 'ann.json',
        json.dumps(
            dict(
                images=[dict(id=1, file_name='flat.png')],
                annotations=[dict(image_id=1, keypoints=[0] * 98 * 3)],
            )
        ),
    )
    before = open(image, 'rb').read()
    with pytest.raises(SystemExit, match='is the drawn image'):
        _analysis('show_point_types').main(
            ['wflw', '--ann', ann, '--img-dir', str(tmp_path), '--out', image]
        )
    assert open(image, 'rb').read() == before
    # mechanism_check: --out-json is the config.
    config = _existing(tmp_path / 'cfg.py', 'x = 1\n')
    with pytest.raises(SystemExit, match='--out-json .* is the config'):
        _analysis('mechanism_check').main(
            [config, 'ckpt.pth', '--out-json', config]
        )
    assert open(config).read() == 'x = 1\n'
