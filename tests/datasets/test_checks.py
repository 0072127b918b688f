"""Missing or inconsistent data fails before any model is built."""

import json
import os.path as osp

import pytest
from annotation_edits import set_field as _set
from conftest import FIXTURE_CONFIG, REPO, load_tool

from mmaniso.datasets.checks import (
    DataCheckError,
    check_annotation_file,
    check_data_files,
)
from mmaniso.testing import write_face_fixture

STOCK_WFLW = (
    'mmpose::face_2d_keypoint/topdown_regression/wflw/'
    'td-reg_res50_8xb64-210e_wflw-256x256.py'
)


def _train_main():
    module = load_tool('tools', 'train.py')
    return module.main


def _config(tmp_path, body: str) -> str:
    path = tmp_path / 'cfg.py'
    path.write_text(body)
    return str(path)


def test_missing_data_folder_names_files_and_steps(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _config(
        tmp_path,
        f'_base_ = [{STOCK_WFLW!r}]\n'
        "custom_imports = dict(imports=['mmaniso'])\n",
    )
    with pytest.raises(SystemExit) as err:
        _train_main()([cfg, '--work-dir', str(tmp_path / 'work')])
    message = str(err.value)
    # One assert per fact the message must name: a checklist, not logic.
    assert 'data/wflw/annotations/face_landmarks_wflw_train.json' in message
    assert 'data/wflw/annotations/face_landmarks_wflw_test.json' in message
    assert 'data/wflw/images/' in message
    assert 'docs/data_preparation.md' in message
    assert 'WFLW_images.tar.gz' in message
    assert 'tools/dataset_converters/convert_wflw.py' in message
    assert 'make_synthface.py' in message
    # Raised before the runner existed: it would have made the work dir.
    assert not (tmp_path / 'work').exists()


def test_empty_image_folder_is_reported(tmp_path, wflw_fixture):
    root = tmp_path / 'data'
    (root / 'images').mkdir(parents=True)
    (root / 'annotations').mkdir()
    for name in ('train', 'test'):
        src = wflw_fixture / 'annotations' / f'face_landmarks_wflw_{name}.json'
        (root / 'annotations' / src.name).write_text(src.read_text())
    from mmengine.config import Config

    cfg = Config.fromfile(FIXTURE_CONFIG)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(root)
    with pytest.raises(DataCheckError, match='image folder, missing or empty'):
        check_data_files(cfg)


def _fixture_cfg(root):
    from mmengine.config import Config

    cfg = Config.fromfile(FIXTURE_CONFIG)
    for split in ('train', 'val', 'test'):
        cfg[f'{split}_dataloader'].dataset.data_root = str(root)
    return cfg


def test_keypoint_count_mismatch_names_file_record_and_counts(tmp_path):
    # A 68-point (300W layout) file under the 98-point WFLW dataset class.
    paths = write_face_fixture(
        str(tmp_path), dict(train=2, test=1), num_keypoints=68
    )
    wflw_name = osp.join(
        tmp_path, 'annotations', 'face_landmarks_wflw_{}.json'
    )
    for split, path in paths.items():
        with open(path) as f:
            data = json.load(f)
        with open(wflw_name.format(split), 'w') as f:
            json.dump(data, f)
    with pytest.raises(DataCheckError) as err:
        check_data_files(_fixture_cfg(tmp_path))
    message = str(err.value)
    assert 'face_landmarks_wflw_train.json' in message
    assert "annotation #0 (id=1, image 'train_00001.png')" in message
    assert 'has 68 keypoints' in message
    assert 'declares 98' in message
    assert 'wflw.py' in message


def test_malformed_keypoints_field_names_the_field(tmp_path):
    paths = write_face_fixture(str(tmp_path), dict(train=2, test=1))
    with open(paths['train']) as f:
        data = json.load(f)
    data['annotations'][1]['keypoints'] = data['annotations'][1]['keypoints'][
        :-1
    ]
    with open(paths['train'], 'w') as f:
        json.dump(data, f)
    with pytest.raises(
        DataCheckError, match=r'annotation #1 .*field "keypoints"'
    ):
        check_data_files(_fixture_cfg(tmp_path))


def test_invalid_json_names_the_file(tmp_path):
    paths = write_face_fixture(str(tmp_path), dict(train=2, test=1))
    with open(paths['test'], 'w') as f:
        f.write('{"images": [')
    with pytest.raises(DataCheckError, match='wflw_test.json: not valid'):
        check_data_files(_fixture_cfg(tmp_path))


def test_complete_fixture_passes(wflw_fixture):
    check_data_files(_fixture_cfg(wflw_fixture))


# -------------------------------------------- records that load wrongly
BALANCED_CONFIG = osp.join(
    REPO, 'configs', 'fixture', 'res18_wflw_fixture_balanced.py'
)


def _edit_fixture(tmp_path, edit, split='train', config=FIXTURE_CONFIG):
    """A fresh 3-train/1-test fixture whose ``split`` JSON ``edit`` changed;
    returns its config."""
    from mmengine.config import Config

    paths = write_face_fixture(str(tmp_path), dict(train=3, test=1))
    with open(paths[split]) as f:
        data = json.load(f)
    edit(data)
    with open(paths[split], 'w') as f:
        json.dump(data, f)  # writes NaN and Infinity as JSON allows
    cfg = Config.fromfile(config)
    for name in ('train', 'val', 'test'):
        cfg[f'{name}_dataloader'].dataset.data_root = str(tmp_path)
    return cfg


RECORD = (
    'face_landmarks_wflw_train.json: '
    "annotation #1 (id=2, image 'train_00002.png')"
)


@pytest.mark.parametrize(
    'field, value, expected',
    [
        (
            'keypoints',
            (4, float('nan')),
            'holds nan at position 4 (point 1, y)',
        ),
        (
            'keypoints',
            (6, float('inf')),
            'holds inf at position 6 (point 2, x)',
        ),
        ('keypoints', (0, 'a'), "holds 'a' at position 0"),
        ('keypoints', (3, None), 'holds None at position 3'),
        ('bbox', (2, float('-inf')), 'holds -inf at position 2'),
        ('center', (0, float('nan')), 'holds nan at position 0'),
        ('scale', float('inf'), 'holds inf, not a finite number'),
        ('scale', '0.4', "holds '0.4', not a finite number"),
    ],
)
def test_non_finite_or_non_numeric_value_names_record_and_field(
    tmp_path, field, value, expected
):
    cfg = _edit_fixture(tmp_path, _set(field, value))
    with pytest.raises(DataCheckError) as err:
        check_data_files(cfg)
    message = str(err.value)
    assert RECORD in message
    assert f'field "{field}" {expected}' in message
    assert 'loss turns NaN' in message
    assert 'docs/data_preparation.md' in message


def test_malformed_box_fields_name_the_field(tmp_path):
    cfg = _edit_fixture(tmp_path, _set('center', [1.0, 2.0, 3.0]))
    with pytest.raises(
        DataCheckError, match=r'field "center" must be a list of 2'
    ):
        check_data_files(cfg)
    cfg = _edit_fixture(tmp_path, _set('scale', 0.0))
    with pytest.raises(
        DataCheckError, match=r'field "scale" is 0.0; .* positive'
    ):
        check_data_files(cfg)


def test_non_finite_value_stops_tools_train_before_the_runner(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / 'data'
    _edit_fixture(data, _set('keypoints', (0, float('nan'))))
    with pytest.raises(SystemExit) as err:
        _train_main()(
            [
                FIXTURE_CONFIG,
                '--work-dir',
                str(tmp_path / 'work'),
                '--cfg-options',
            ]
            + [
                f'{s}_dataloader.dataset.data_root={data}/'
                for s in ('train', 'val', 'test')
            ]
        )
    assert RECORD in str(err.value)
    assert 'field "keypoints" holds nan' in str(err.value)
    assert not (tmp_path / 'work').exists()


def _duplicate_image_id(data):
    data['images'][2]['id'] = data['images'][0]['id']
    data['annotations'][2]['image_id'] = data['images'][0]['id']


def _duplicate_annotation_id(data):
    data['annotations'][2]['id'] = data['annotations'][0]['id']


@pytest.mark.parametrize(
    'edit, expected',
    [
        (
            _duplicate_image_id,
            "image #2 ('train_00003.png') has the id 1 of image #0 "
            "('train_00001.png')",
        ),
        (
            _duplicate_annotation_id,
            'annotation #2 (id=1, image \'train_00003.png\'): field "id" '
            'repeats the id of annotation #0',
        ),
        (
            _set('image_id', 99),
            'annotation #1 (id=2, image None): field "image_id" is 99, '
            'which no entry of "images" has',
        ),
        (
            lambda data: data['annotations'][1].pop('image_id'),
            'annotation #1 (id=2, image None): no field "image_id"',
        ),
        (lambda data: data.pop('images'), 'train.json: no "images" list'),
        (
            lambda data: data['annotations'].clear(),
            'train.json: the "annotations" list is empty',
        ),
        (
            lambda data: data['annotations'][1].pop('center'),
            f'{RECORD}: no field "center"; WFLWDataset builds the face box',
        ),
        (
            lambda data: data['annotations'][1].pop('scale'),
            f'{RECORD}: no field "scale"; WFLWDataset',
        ),
    ],
)
def test_inconsistent_records_are_refused(tmp_path, edit, expected):
    cfg = _edit_fixture(tmp_path, edit)
    with pytest.raises(DataCheckError) as err:
        check_data_files(cfg)
    assert expected in str(err.value)
    assert 'docs/data_preparation.md' in str(err.value)


def test_centre_and_scale_are_required_only_where_read(tmp_path):
    paths = write_face_fixture(str(tmp_path), dict(train=2))
    with open(paths['train']) as f:
        data = json.load(f)
    for ann in data['annotations']:
        del ann['center'], ann['scale']
    with open(paths['train'], 'w') as f:
        json.dump(data, f)
    # COFW (MMPose's COCO-style reader) builds the box from bbox.
    check_annotation_file(paths['train'], 98, reader=('COFWDataset',))
    with pytest.raises(DataCheckError, match='no field "center"; AFLW'):
        check_annotation_file(
            paths['train'], 98, reader=('AFLWDataset', 'BaseCocoStyleDataset')
        )


def _hide_face(data, index=1):
    kpts = data['annotations'][index]['keypoints']
    kpts[2::3] = [0] * (len(kpts) // 3)


def test_face_without_visible_point_is_refused_when_balancing(tmp_path):
    cfg = _edit_fixture(tmp_path, _hide_face, config=BALANCED_CONFIG)
    with pytest.raises(DataCheckError) as err:
        check_data_files(cfg)
    message = str(err.value)
    assert f'{RECORD}: no visible point' in message
    assert "train_dataloader's PoseBalancedSampler" in message
    assert 'PoseBalancingHook' in message
    # Without pose balancing the face is only never counted: allowed.
    check_data_files(_edit_fixture(tmp_path, _hide_face))
    # The hook alone (the no-balance ablation keeps it for the mean shape).
    cfg = _edit_fixture(tmp_path, _hide_face)
    cfg.custom_hooks = [dict(type='mmaniso.PoseBalancingHook')]
    with pytest.raises(DataCheckError, match='but the PoseBalancingHook'):
        check_data_files(cfg)
    # Only the train split is balanced.
    cfg = _edit_fixture(
        tmp_path,
        lambda data: _hide_face(data, 0),
        split='test',
        config=BALANCED_CONFIG,
    )
    check_data_files(cfg)
