"""The pre-check refuses finite but wrong records and broken images.

Each test writes the tiny fixture, damages one record or image the way
messy real data does, and expects the pre-check to name the file, the
record, the field and the fix.
"""

import io
import json
import os
import os.path as osp

import numpy as np
import pytest
from annotation_edits import set_field as _set
from conftest import FIXTURE_CONFIG, load_tool
from PIL import Image

from mmaniso.datasets.checks import (
    KEYPOINT_OUTSIDE_TOLERANCE,
    DataCheckError,
    check_annotation_file,
    check_data_files,
    face_geometry_problem,
)
from mmaniso.testing import write_face_fixture

RECORD = "annotation #1 (id=2, image 'train_00002.png')"
TEST_RECORD = "annotation #0 (id=4, image 'test_00004.png')"


def _fixture(tmp_path, edit=None, split='train'):
    """A 3-train/1-test fixture whose ``split`` JSON ``edit`` changed;
    returns its config and annotation paths."""
    from mmengine.config import Config

    paths = write_face_fixture(str(tmp_path), dict(train=3, test=1))
    if edit is not None:
        with open(paths[split]) as f:
            data = json.load(f)
        edit(data)
        with open(paths[split], 'w') as f:
            json.dump(data, f)
    cfg = Config.fromfile(FIXTURE_CONFIG)
    for name in ('train', 'val', 'test'):
        cfg[f'{name}_dataloader'].dataset.data_root = str(tmp_path)
    return cfg, paths


def _refused(cfg, splits=('train', 'val', 'test')) -> str:
    with pytest.raises(DataCheckError) as err:
        check_data_files(cfg, splits)
    return str(err.value)


def _side(ann) -> float:
    return ann['scale'] * 200


# ------------------------------------------- keypoints, box and image
def _move_point(sides, index=1, point=5):
    """Moves one point ``sides`` face-box sides right of the box's edge."""

    def edit(data):
        ann = data['annotations'][index]
        right = ann['center'][0] + _side(ann) / 2
        ann['keypoints'][3 * point] = right + sides * _side(ann)

    return edit


def _shift_face(dx, index=0, centre=False):
    def edit(data):
        ann = data['annotations'][index]
        ann['keypoints'][0::3] = [x + dx for x in ann['keypoints'][0::3]]
        if centre:
            ann['center'][0] += dx

    return edit


def test_point_two_box_sides_outside_its_box_is_refused(tmp_path):
    # The attack: a point 200 px outside a 100 px box.
    message = _refused(_fixture(tmp_path, _move_point(2.0))[0])
    assert f'face_landmarks_wflw_train.json: {RECORD}' in message
    assert 'field "keypoints" puts point 5 at' in message
    assert '(2 box sides) outside the face box' in message
    assert f'the tolerance is {KEYPOINT_OUTSIDE_TOLERANCE:g} box sides' in (
        message
    )
    assert 'docs/data_preparation.md' in message


def test_points_slightly_outside_the_box_pass(tmp_path):
    # Real datasets put points a little outside the box: within tolerance.
    inside = 0.8 * KEYPOINT_OUTSIDE_TOLERANCE
    cfg, _ = _fixture(tmp_path, _move_point(inside * 0.5))
    check_data_files(cfg)
    cfg, _ = _fixture(tmp_path, _move_point(1.2 * KEYPOINT_OUTSIDE_TOLERANCE))
    assert 'outside the face box' in _refused(cfg)


def test_unlabelled_point_is_not_held_to_the_box(tmp_path):
    def edit(data):
        kpts = data['annotations'][1]['keypoints']
        kpts[0:3] = [0, 0, 0]  # COCO's unlabelled point at the origin

    check_data_files(_fixture(tmp_path, edit)[0])


@pytest.mark.parametrize(
    'edit, expected',
    [
        # The attack: test ground truth 5,000 px outside the image
        # (NME 5,865 with rc 0).
        (_shift_face(5000.0), 'outside the face box'),
        (
            _shift_face(5000.0, centre=True),
            'field "center" puts the face box (centre 5',
        ),
    ],
)
def test_test_ground_truth_outside_the_image_is_refused(
    tmp_path, edit, expected
):
    cfg, _ = _fixture(tmp_path, edit, split='test')
    message = _refused(cfg, ('test',))
    assert f'face_landmarks_wflw_test.json: {TEST_RECORD}' in message
    assert expected in message
    assert 'score the test NME' in message


def test_test_ground_truth_outside_the_image_stops_tools_test(
    tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / 'data'
    _fixture(data, _shift_face(5000.0, centre=True), split='test')
    checkpoint = tmp_path / 'epoch_1.pth'
    checkpoint.write_bytes(b'')  # never read: the check comes first
    module = load_tool('tools', 'test.py')
    options = [
        f'{s}_dataloader.dataset.data_root={data}/'
        for s in ('train', 'val', 'test')
    ]
    with pytest.raises(SystemExit) as err:
        module.main(
            [FIXTURE_CONFIG, str(checkpoint), '--work-dir', 'w']
            + ['--cfg-options']
            + options
        )
    assert TEST_RECORD in str(err.value)
    assert 'outside the 96x96 image' in str(err.value)


def test_point_far_outside_the_image_is_refused(tmp_path):
    # Inside its (stretched) box but 3 box sides left of the image.
    def edit(data):
        ann = data['annotations'][1]
        ann['center'][0] = 0.0
        ann['scale'] = 2 * ann['scale']
        ann['keypoints'][0] = -3 * _side(ann) / 2

    message = _refused(_fixture(tmp_path, edit)[0])
    assert RECORD in message
    assert 'outside the face box' in message or 'the 96x96 image' in message


def test_geometry_function_agrees_with_hand_computed_cases():
    pts = np.array([[10.0, 10.0], [20.0, 20.0]])
    box = dict(center=(15.0, 15.0), half=(5.0, 5.0), image_size=(40, 40))
    assert face_geometry_problem(pts, [2, 2], **box) is None
    # 0.5 sides = 5 px beyond the box edge at x = 20: exactly allowed.
    edge = pts + [[0, 0], [5.0, 0]]
    assert face_geometry_problem(edge, [2, 2], **box) is None
    field, problem = face_geometry_problem(edge + [0.01, 0], [2, 2], **box)
    assert field == 'keypoints' and 'point 1' in problem
    # Hidden-but-labelled (1) is held to the box; unlabelled (0) is not.
    far = pts + [[0, 0], [12.0, 0]]
    assert face_geometry_problem(far, [2, 1], **box) is not None
    assert face_geometry_problem(far, [2, 0], **box) is None


# ------------------------------------------------- bounds (item 2, 3)
@pytest.mark.parametrize(
    'edit, expected',
    [
        (_set('keypoints', (0, 1e300)), 'field "keypoints" puts point 0'),
        (_set('keypoints', (1, -99999.0)), 'field "keypoints" puts point 0'),
        (_set('center', (0, 1e300)), 'field "center"'),
        (_set('center', [1e9, -1e9]), 'field "center"'),
        (_set('scale', 1e300), 'field "scale" gives the face box'),
        (_set('scale', 1e30), 'larger than 10 times the 96x96 image'),
        (_set('scale', 1e-30), 'a face box is at least 1 px wide'),
    ],
)
def test_out_of_bounds_coordinates_centres_and_scales_are_refused(
    tmp_path, edit, expected
):
    message = _refused(_fixture(tmp_path, edit)[0])
    assert RECORD in message
    assert expected in message


def test_bounds_without_an_image_size(tmp_path):
    def edit(data):
        for img in data['images']:
            del img['width'], img['height']
        # Unlabelled points escape the box rule, not the bound.
        data['annotations'][1]['keypoints'][0:3] = [1e300, 0, 0]

    _, paths = _fixture(tmp_path, edit)
    with pytest.raises(DataCheckError, match='image size unknown'):
        check_annotation_file(paths['train'], 98, reader=('WFLWDataset',))


@pytest.mark.parametrize('flag', [-1, 0.5, 7])
def test_visibility_other_than_0_1_2_is_refused(tmp_path, flag):
    message = _refused(_fixture(tmp_path, _set('keypoints', (5, flag)))[0])
    assert RECORD in message
    assert f'gives point 1 the visibility {flag!r} (position 5)' in message
    assert '0 (unlabelled), 1 (labelled, hidden) and 2 (visible)' in message


def test_visibility_2_as_float_passes(tmp_path):
    def edit(data):
        kpts = data['annotations'][1]['keypoints']
        kpts[2::3] = [2.0] * (len(kpts) // 3)

    check_data_files(_fixture(tmp_path, edit)[0])


def _set_image(field, value):
    def edit(data):
        data['images'][1][field] = value

    return edit


@pytest.mark.parametrize(
    'edit, expected',
    [
        (_set('keypoints', (0, True)), 'field "keypoints" holds the JSON '),
        (_set('scale', True), 'field "scale" holds the JSON boolean true'),
        (_set('center', (1, False)), 'field "center" holds the JSON boolean'),
        (_set('bbox', (2, True)), 'field "bbox" holds the JSON boolean'),
        (_set_image('width', True), 'field "width" is true, not a whole'),
        (_set_image('height', 96.5), 'field "height" is 96.5, not a whole'),
    ],
)
def test_booleans_where_numbers_belong_are_refused(tmp_path, edit, expected):
    message = _refused(_fixture(tmp_path, edit)[0])
    assert expected in message
    assert 'train_00002.png' in message


# --------------------------------------------------- images (item 4)
def _image(root, name='train_00002.png'):
    return osp.join(root, 'images', name)


def test_image_of_another_size_is_refused(tmp_path):
    cfg, _ = _fixture(tmp_path)
    Image.new('RGB', (64, 80)).save(_image(tmp_path))
    message = _refused(cfg)
    assert "face_landmarks_wflw_train.json: image #1 ('train_00002.png')" in (
        message
    )
    assert 'the annotation says 96x96 (width x height)' in message
    assert 'is 64x80 as MMPose decodes it' in message


@pytest.mark.parametrize(
    'damage, expected',
    [
        (os.remove, 'image file not found'),
        (lambda p: open(p, 'wb').close(), 'image file is empty (0 bytes)'),
        (
            lambda p: _truncate(p, 0.6),
            'not a readable image (truncated or corrupt',
        ),
    ],
)
def test_missing_empty_or_truncated_image_is_refused(
    tmp_path, damage, expected
):
    cfg, _ = _fixture(tmp_path)
    damage(_image(tmp_path))
    message = _refused(cfg)
    assert "image #1 ('train_00002.png')" in message
    assert expected in message
    assert _image(tmp_path) in message


def _truncate(path, keep):
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[: int(len(data) * keep)])


def _use_jpeg(tmp_path, exif_orientation=None, truncate=None):
    """Replaces train image 2 by a noisy 96 x 72 JPEG (optionally with an
    EXIF orientation, optionally truncated)."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (72, 96, 3), dtype=np.uint8)
    buf = io.BytesIO()
    kwargs = {}
    if exif_orientation:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        kwargs['exif'] = exif.tobytes()
    Image.fromarray(pixels).save(buf, 'JPEG', **kwargs)
    data = buf.getvalue()
    if truncate:
        data = data[: int(len(data) * truncate)]
    with open(_image(tmp_path, 'train_00002.jpg'), 'wb') as f:
        f.write(data)


def _jpeg_entry(width, height):
    def edit(data):
        data['images'][1].update(
            file_name='train_00002.jpg', width=width, height=height
        )

    return edit


def test_truncated_jpeg_is_refused(tmp_path):
    cfg, _ = _fixture(tmp_path, _jpeg_entry(96, 72))
    _use_jpeg(tmp_path)
    check_data_files(cfg)
    _use_jpeg(tmp_path, truncate=0.7)
    assert 'truncated or corrupt' in _refused(cfg)


def test_exif_orientation_is_applied_as_mmpose_decodes(tmp_path):
    # OpenCV (MMPose's loader) turns an EXIF-6 image: 72 wide, 96 high.
    cfg, _ = _fixture(tmp_path, _jpeg_entry(72, 96))
    _use_jpeg(tmp_path, exif_orientation=6)
    check_data_files(cfg)
    cfg, _ = _fixture(tmp_path, _jpeg_entry(96, 72))
    _use_jpeg(tmp_path, exif_orientation=6)
    assert 'EXIF orientation applied' in _refused(cfg)


@pytest.mark.parametrize('name', ['/etc/passwd', '../x.json', 'a/../../x'])
def test_file_name_outside_the_image_folder_is_refused(tmp_path, name):
    outside = tmp_path / 'x.json'
    outside.write_text('{}')
    message = _refused(_fixture(tmp_path, _set_image('file_name', name))[0])
    assert f'image #1 (id=2): field "file_name" is {name!r}' in message
    assert 'leaves the image folder' in message


# ------------------------------------------------ encodings (item 12)
def test_annotation_file_not_utf8_names_file_and_fix(tmp_path):
    cfg, paths = _fixture(tmp_path)
    with open(paths['train'], 'rb') as f:
        raw = f.read()
    with open(paths['train'], 'wb') as f:
        f.write(raw.replace(b'train_00003.png', b'train_0000\xe9.png'))
    message = _refused(cfg)
    assert 'face_landmarks_wflw_train.json: not UTF-8 text (byte' in message
    assert 'Re-save it as UTF-8' in message
