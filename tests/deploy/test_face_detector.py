"""mmaniso.deploy.face_detector against facenet-pytorch's own MTCNN.

The reference's outputs were recorded by
``tools/misc/record_mtcnn_reference.py`` (facenet-pytorch 2.6.0 on
torch 2.1.2, its own environment) into ``mtcnn_reference.json`` beside
this file; the images are rebuilt here from matplotlib's
``grace_hopper.jpg`` by the same function, bit for bit (their SHA-256 is
checked), so the package's code is not needed at test time, only its
weight files.
"""

import json
import os.path as osp

import numpy as np
import pytest
from conftest import load_tool

from mmaniso.deploy import face_detector
from mmaniso.deploy.face_detector import MTCNNFaceDetector

DATA = osp.join(osp.dirname(__file__), 'mtcnn_reference.json')


def _tool(name):
    return load_tool('tools', 'misc', f'{name}.py')


@pytest.fixture(scope='module')
def recorded():
    with open(DATA) as f:
        return json.load(f)


@pytest.fixture(scope='module')
def images():
    return _tool('record_mtcnn_reference').reference_images()


@pytest.fixture(scope='module')
def detectors():
    cache = {}

    def get(min_face, thresholds):
        key = (min_face, tuple(thresholds))
        if key not in cache:
            cache[key] = MTCNNFaceDetector(
                min_face=min_face, thresholds=thresholds
            )
        return cache[key]

    return get


def _case_ids():
    with open(DATA) as f:
        return [case['name'] for case in json.load(f)['cases']]


@pytest.mark.parametrize('name', _case_ids())
def test_detector_gives_the_reference_boxes_scores_and_points(
    name, recorded, images, detectors
):
    (case,) = [c for c in recorded['cases'] if c['name'] == name]
    image = images[case['image']]
    rec = _tool('record_mtcnn_reference')
    assert rec.digest(image) == case['sha256'], (
        f'{case["image"]} is not the image the reference saw (another '
        'grace_hopper.jpg or JPEG decoder?); rerun '
        'tools/misc/record_mtcnn_reference.py'
    )
    detector = detectors(case['min_face'], case['thresholds'])
    boxes, scores, points = detector.detect(image)
    expected = np.array(case['boxes']).reshape(-1, 4)
    assert len(boxes) == len(expected), (scores, case['probs'])
    # Same torch ops in the same order, other torch version: the boxes
    # agree to float rounding (1e-4 px measured), far inside a pixel.
    np.testing.assert_allclose(boxes, expected, atol=0.05)
    np.testing.assert_allclose(scores, case['probs'], atol=1e-4)
    np.testing.assert_allclose(
        points, np.array(case['points']).reshape(-1, 5, 2), atol=0.05
    )
    # __call__ gives the same boxes clipped to the image, and the scores.
    clipped, same = detector(image)
    height, width = image.shape[:2]
    np.testing.assert_array_equal(same, scores)
    np.testing.assert_allclose(
        clipped, np.clip(boxes, 0, [width, height, width, height])
    )


def test_recorded_cases_cover_a_scene_and_a_box_outside_the_image(
    recorded,
):
    by_name = {c['name']: c for c in recorded['cases']}
    scene = by_name['grey_scene_91_and_61_px']
    widths = sorted(b[2] - b[0] for b in scene['boxes'])
    assert len(widths) == 2 and 50 < widths[0] < 75 and 80 < widths[1] < 110
    edge = by_name['face_cut_by_the_top_edge']
    assert len(edge['boxes']) == 1 and edge['boxes'][0][1] < 0


def test_cell_boxes_and_min_nms_follow_the_reference_formulas():
    torch = face_detector.torch
    # P-Net's cell (x, y) = (3, 5) at scale 0.47: floor((2x + 1) / s),
    # floor((2x + 12) / s), as facenet-pytorch's generateBoundingBox.
    boxes = face_detector._cell_boxes(
        torch.tensor([3]), torch.tensor([5]), 0.47
    )
    assert boxes.tolist() == [[14.0, 23.0, 38.0, 46.0]]
    # Made square about the centre, the longer side kept.
    boxes = face_detector._square(torch.tensor([[14.0, 20.0, 30.0, 50.0]]))
    assert boxes.tolist() == [[7.0, 20.0, 37.0, 50.0]]
    # NMS by the smaller box: a small box inside a big one goes, whatever
    # their IoU, and areas count whole pixels (x2 - x1 + 1).
    big = [0.0, 0.0, 99.0, 99.0]
    inside = [10.0, 10.0, 29.0, 29.0]  # IoU 0.04, overlap of smaller 1
    keep = face_detector._nms_min(
        np.array([inside, big]), np.array([0.8, 0.9], np.float32), 0.7
    )
    assert keep.tolist() == [1]
    apart = [200.0, 0.0, 299.0, 99.0]
    keep = face_detector._nms_min(
        np.array([big, apart]), np.array([0.8, 0.9], np.float32), 0.7
    )
    assert keep.tolist() == [1, 0]


def test_crops_are_clipped_not_padded_and_one_based():
    torch = face_detector.torch
    image = torch.arange(3 * 10 * 12, dtype=torch.float32).reshape(3, 10, 12)
    crops, has = face_detector._crops(
        image, torch.tensor([[2.7, 3.2, 5.9, 6.0], [-5.0, -5.0, 3.0, 3.0]]), 4
    )
    assert has.tolist() == [True, True]
    # Box 0 reads pixels x 1-4, y 2-5 (0-based), exactly 4 x 4: no resampling.
    expected = (image[:, 2:6, 1:5] - 127.5) * 0.0078125
    torch.testing.assert_close(crops[0], expected)
    # Box 1 sticks out: clipped to x, y 0-2 and stretched, never zero-padded.
    assert crops[1].min() >= (image.min() - 127.5) * 0.0078125
    crops, has = face_detector._crops(
        image, torch.tensor([[20.0, 20.0, 30.0, 30.0]]), 24
    )
    assert has.tolist() == [False] and crops.shape == (0, 3, 24, 24)
    # No crop left: R-Net gives empty outputs rather than failing.
    reg, probs = face_detector._batched(face_detector._RNet().eval(), crops)
    assert reg.shape == (0, 4) and probs.shape == (0, 2)


def test_settings_are_validated_and_shown():
    with pytest.raises(ValueError, match='three scores'):
        MTCNNFaceDetector(thresholds=(0.6, 0.7))
    with pytest.raises(ValueError, match='three scores'):
        MTCNNFaceDetector(thresholds=(0.6, 0.7, 1.0))
    with pytest.raises(ValueError, match='min_face'):
        MTCNNFaceDetector(min_face=0)
    detector = MTCNNFaceDetector(min_face=40, thresholds=(0.5, 0.6, 0.6))
    assert repr(detector) == (
        'MTCNN(min_face=40, thresholds=[0.5, 0.6, 0.6], scale_factor=0.709)'
    )
    with pytest.raises(ValueError, match='BGR image'):
        detector(np.zeros((10, 10), np.uint8))
    assert len(detector(np.full((200, 300, 3), 128, np.uint8))[0]) == 0
    # An image smaller than min_face has no pyramid level: no face, no error.
    boxes, scores, points = detector.detect(np.zeros((20, 30, 3), np.uint8))
    assert boxes.shape == (0, 4) and scores.shape == (0,)
    assert points.shape == (0, 5, 2)
