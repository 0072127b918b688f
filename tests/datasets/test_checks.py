"""Missing or inconsistent data fails before any model is built."""

import importlib.util
import json
import os.path as osp

import pytest
from conftest import FIXTURE_CONFIG, REPO

from mmaniso.datasets.checks import DataCheckError, check_data_files
from mmaniso.datasets.fixture import write_face_fixture

STOCK_WFLW = (
    'mmpose::face_2d_keypoint/topdown_regression/wflw/'
    'td-reg_res50_8xb64-210e_wflw-256x256.py'
)


def _train_main():
    spec = importlib.util.spec_from_file_location(
        'mmaniso_train_tool', osp.join(REPO, 'tools', 'train.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
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
