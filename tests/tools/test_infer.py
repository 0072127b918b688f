"""tools/infer.py and mmaniso.deploy.{inference,face_detector}: landmarks of
new images, with boxes given or found by MTCNN, on PyTorch or ONNX Runtime.

The real photograph is matplotlib's sample ``grace_hopper.jpg`` (installed
with the stack, one frontal face); the landmark model is the SynthFace
ResNet18 with random weights and a set mean shape (no download).
"""

import contextlib
import hashlib
import importlib.util
import io
import json
import os
import os.path as osp
import shutil
import struct
import zlib

import cv2
import matplotlib
import numpy as np
import pytest
import torch
from conftest import REPO, load_tool, random_head_model

from mmaniso.deploy.face_detector import MTCNNFaceDetector
from mmaniso.deploy.inference import check_box, output_stems

CONFIG = osp.join(REPO, 'configs', 'synthface', 'res18_aniso_synthface.py')
PHOTO = osp.join(
    osp.dirname(matplotlib.__file__),
    'mpl-data',
    'sample_data',
    'grace_hopper.jpg',
)


@pytest.fixture(scope='module')
def tool():
    return load_tool('tools', 'infer.py')


@pytest.fixture(scope='module')
def detector():
    return MTCNNFaceDetector()


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory, random_head_checkpoint):
    """The session's random-head checkpoint (conftest.py) and a folder of
    this module's own for outputs; ``model`` is shared: never change it."""
    return dict(
        path=random_head_checkpoint['path'],
        model=random_head_checkpoint['model'],
        folder=tmp_path_factory.mktemp('infer'),
    )


def run(tool, *argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        tool.main([str(a) for a in argv])
    return out.getvalue()


def test_detector_finds_the_one_face_of_a_real_photograph(detector):
    image = cv2.imread(PHOTO)
    boxes, scores = detector(image)
    assert len(boxes) == 1 and scores[0] > 0.99
    x1, y1, x2, y2 = boxes[0]
    # Her face spans about x 170-355, y 110-340 of the 512x600 portrait.
    assert 150 < x2 - x1 < 260 and 150 < y2 - y1 < 280
    assert 220 < (x1 + x2) / 2 < 300 and 180 < (y1 + y2) / 2 < 270
    # The mirrored photograph gives the mirrored box.
    flipped, _ = detector(cv2.flip(image, 1))
    width = image.shape[1]
    mirrored = np.array([width - x2, y1, width - x1, y2])
    assert len(flipped) == 1
    np.testing.assert_allclose(flipped[0], mirrored, atol=20)


def test_detector_finds_no_face_in_a_flat_image(detector):
    assert len(detector(np.full((200, 300, 3), 128, np.uint8))[0]) == 0


def test_infer_on_a_real_photograph_writes_json_and_png(
    tool, checkpoint, detector, tmp_path
):
    printed = run(
        tool, CONFIG, checkpoint['path'], PHOTO, '--out-dir', tmp_path
    )
    assert '1 image(s), 1 face(s)' in printed
    with open(tmp_path / 'grace_hopper.json') as f:
        result = json.load(f)
    assert result['image'] == PHOTO and result['dataset'] == 'wflw'
    (face,) = result['faces']
    box, _ = detector(cv2.imread(PHOTO))
    np.testing.assert_allclose(face['box'], box[0], atol=0.01)
    kpts = np.array(face['keypoints'])
    assert kpts.shape == (98, 2) and np.isfinite(kpts).all()
    # The keypoints are in image pixels: the mean-shape part of the
    # prediction maps into the face's (padded) box.
    assert (kpts[:, 0] > 0).all() and (kpts[:, 0] < 512).all()
    png = cv2.imread(str(tmp_path / 'grace_hopper.png'))
    assert png.shape == cv2.imread(PHOTO).shape
    assert np.abs(png.astype(int) - cv2.imread(PHOTO).astype(int)).max() > 0


def test_given_boxes_match_the_model_run_by_hand(tool, checkpoint, tmp_path):
    from mmpose.apis import inference_topdown

    image = cv2.imread(PHOTO)
    boxes = {'grace_hopper.jpg': [[150, 100, 370, 350], [0, 0, 100, 120]]}
    boxes_file = tmp_path / 'boxes.json'
    boxes_file.write_text(json.dumps(boxes))
    out = tmp_path / 'out'
    run(
        tool, CONFIG, checkpoint['path'], PHOTO, '--boxes', boxes_file,
        '--out-dir', out, '--batch-size', '1',
    )  # fmt: skip
    with open(out / 'grace_hopper.json') as f:
        faces = json.load(f)['faces']
    assert [f['box'] for f in faces] == boxes['grace_hopper.jpg']
    # MMPose's own top-down inference on the same boxes: the same points.
    model = checkpoint['model']
    expected = inference_topdown(
        model, image, np.array(boxes['grace_hopper.jpg'], dtype=np.float32)
    )
    for face, sample in zip(faces, expected):
        np.testing.assert_allclose(
            face['keypoints'], sample.pred_instances.keypoints[0], atol=0.01
        )


def test_onnx_runs_the_same_landmarks(tool, checkpoint, tmp_path):
    pytest.importorskip('onnxruntime')
    from mmaniso.deploy import export_onnx

    onnx_file = str(tmp_path / 'model.onnx')
    export_onnx(
        checkpoint['model'], (1, 3, 64, 64), onnx_file, dynamic_batch=True
    )
    boxes_file = tmp_path / 'boxes.json'
    boxes_file.write_text(json.dumps({PHOTO: [[150, 100, 370, 350]]}))
    for name, extra in (('torch', []), ('onnx', ['--onnx', onnx_file])):
        run(
            tool, CONFIG, checkpoint['path'], PHOTO, '--boxes', boxes_file,
            '--out-dir', tmp_path / name, *extra,
        )  # fmt: skip
    loaded = []
    for name in ('torch', 'onnx'):
        with open(tmp_path / name / 'grace_hopper.json') as f:
            loaded.append(np.array(json.load(f)['faces'][0]['keypoints']))
    # 1e-4 of the crop (64 px, box ~270 px after padding) is ~0.03 px here;
    # the JSON rounds to 0.01.
    np.testing.assert_allclose(loaded[0], loaded[1], atol=0.05)


def test_outputs_are_not_overwritten_without_overwrite(
    tool, checkpoint, tmp_path
):
    run(tool, CONFIG, checkpoint['path'], PHOTO, '--out-dir', tmp_path)
    before = (tmp_path / 'grace_hopper.json').read_text()
    with pytest.raises(SystemExit, match='--overwrite'):
        run(tool, CONFIG, checkpoint['path'], PHOTO, '--out-dir', tmp_path)
    assert (tmp_path / 'grace_hopper.json').read_text() == before
    run(
        tool,
        CONFIG,
        checkpoint['path'],
        PHOTO,
        '--out-dir',
        tmp_path,
        '--overwrite',
    )


def test_unreadable_image_is_named(tool, checkpoint, tmp_path):
    bad = tmp_path / 'broken.jpg'
    bad.write_bytes(b'not a jpeg')
    with pytest.raises(SystemExit, match=r'cannot read .*broken\.jpg'):
        run(tool, CONFIG, checkpoint['path'], bad, '--out-dir', tmp_path / 'o')


def test_box_outside_the_image_is_refused_with_the_fix(
    tool, checkpoint, tmp_path
):
    boxes_file = tmp_path / 'boxes.json'
    boxes_file.write_text(
        json.dumps({'grace_hopper.jpg': [[400, 100, 700, 300]]})
    )
    with pytest.raises(SystemExit) as err:
        run(
            tool, CONFIG, checkpoint['path'], PHOTO, '--boxes', boxes_file,
            '--out-dir', tmp_path / 'o',
        )  # fmt: skip
    message = str(err.value)
    assert 'boxes.json' in message and 'box 0' in message
    assert 'not inside the 512x600 image' in message


def test_check_box_refuses_wrong_shapes_and_xywh_like_boxes():
    assert check_box([1, 2, 3, 4], 10, 10, 'x').tolist() == [1, 2, 3, 4]
    with pytest.raises(ValueError, match='four finite numbers'):
        check_box([1, 2, 3], 10, 10, 'x')
    with pytest.raises(ValueError, match='four finite numbers'):
        check_box([1, 2, float('nan'), 4], 10, 10, 'x')
    with pytest.raises(ValueError, match='not x, y, w, h'):
        check_box([5, 5, 3, 8], 10, 10, 'x')  # x2 < x1: a width, probably


def test_two_images_with_one_stem_are_refused():
    with pytest.raises(ValueError, match='both write face.json'):
        output_stems(['a/face.jpg', 'b/face.png'])


def test_no_face_is_reported_per_image_with_settings_and_the_fix(
    tool, checkpoint, tmp_path, monkeypatch
):
    from mmaniso.deploy import face_detector

    built = []

    class Recording(face_detector.MTCNNFaceDetector):
        def __init__(self, *args, **kwargs):
            built.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(face_detector, 'MTCNNFaceDetector', Recording)
    flat = tmp_path / 'wall.png'
    cv2.imwrite(str(flat), np.full((240, 320, 3), 128, np.uint8))
    printed = run(
        tool, CONFIG, checkpoint['path'], flat, PHOTO, '--out-dir',
        tmp_path / 'o', '--min-face', 40, '--det-thr', 0.5, 0.6, 0.65,
        '--score-thr', 0.8,
    )  # fmt: skip
    assert built == [dict(min_face=40.0, thresholds=[0.5, 0.6, 0.65])]
    assert '2 image(s), 1 face(s)' in printed
    (line,) = [x for x in printed.splitlines() if ': no face found' in x]
    assert line.startswith(f'{flat}: no face found')
    assert '--min-face 40 px, --det-thr 0.5 0.6 0.65' in line
    assert '--score-thr 0.8' in line
    assert '--boxes boxes.json with {"wall.png": [[x1, y1, x2, y2]]}' in line
    assert 'no face found in 1 image(s)' in printed
    with open(tmp_path / 'o' / 'wall.json') as f:
        assert json.load(f)['faces'] == []


def test_infer_defaults_and_bad_thresholds(tool, checkpoint, tmp_path):
    args = tool.parse_args([CONFIG, 'x.pth', PHOTO])
    assert args.det_thr == [0.6, 0.7, 0.7] and args.score_thr == 0.9
    assert args.min_face == tool.MIN_FACE
    with pytest.raises(SystemExit, match='three scores in'):
        run(
            tool, CONFIG, checkpoint['path'], PHOTO, '--det-thr', 0.6, 0.7,
            1.5, '--out-dir', tmp_path,
        )  # fmt: skip


def _detection_rate():
    return load_tool('tools', 'misc', 'detection_rate.py')


def test_detection_rate_tool_reports_found_missed_false(tmp_path):
    module = _detection_rate()
    assert module.photograph() == PHOTO
    truth = tmp_path / 'truth.json'
    truth.write_text(json.dumps({'grace_hopper.jpg': [[174, 120, 356, 340]]}))
    flat = tmp_path / 'flat.png'
    cv2.imwrite(str(flat), np.full((200, 300, 3), 128, np.uint8))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rows = module.main([PHOTO, str(flat), '--truth', str(truth)])
    assert rows[PHOTO]['found'] == 1 and rows[PHOTO]['false'] == 0
    assert rows[str(flat)] == dict(kept=0)
    printed = out.getvalue()
    assert f'| {PHOTO} | 512x600 | 1 | 1 | 0 | 0 |' in printed
    assert 'MTCNN(min_face=20, thresholds=[0.6, 0.7, 0.7]' in printed


def test_detection_rate_matching_counts_each_face_once():
    match = _detection_rate().match
    truth = [[100, 100, 160, 170], [400, 100, 440, 150]]
    boxes = np.array(
        [
            [102, 104, 161, 172],  # the first face
            [98, 100, 158, 168],  # the first face again: false
            [300, 300, 340, 340],  # nothing there: false
            [400, 100, 520, 240],  # the second face's place, 3x too big
        ]
    )
    assert match(boxes, truth) == (1, 1, 3)
    assert match(np.zeros((0, 4)), truth) == (0, 2, 0)


def test_faces_of_40_px_and_up_are_found_in_synthetic_scenes(tool):
    """Scenes built from the photograph every install has (the background
    is camera.png's when scikit-image is installed, procedural otherwise),
    with the tool's default settings: a 40 px face, and a grey JPEG with
    faces of 90 and 60 px as in a press photograph."""
    module = _detection_rate()
    photos = {'grace_hopper.jpg': (cv2.imread(PHOTO), [[174, 120, 356, 340]])}
    cases = module.scenes(photos)
    detector = MTCNNFaceDetector(
        min_face=tool.MIN_FACE, thresholds=tool.DET_THR
    )
    names = [n for n in cases if n.startswith(('one face 40', 'press-like'))]
    assert len(names) == 2
    for name in names:
        image, truth = cases[name]
        boxes, scores = detector(image)
        boxes = boxes[scores >= tool.SCORE_THR]
        assert module.match(boxes, truth) == (len(truth), 0, 0), name


@pytest.mark.skipif(
    _detection_rate().skimage_data() is None,
    reason='scikit-image is not installed: its bundled photographs '
    '(astronaut.png, camera.png, ...) are the real scenes checked here',
)
def test_real_photographs_of_scikit_image(tool, detector):
    """Every face of astronaut.png and camera.png (grey, in profile,
    outdoors) is found with the tool's defaults (the photographs without a
    face are in docs/inference.md's table: the motorcycle's brake disc
    scores 0.93)."""
    module = _detection_rate()
    photos = module.real_photographs()
    assert {'astronaut.png', 'camera.png'} <= set(photos)
    for name, (image, truth) in photos.items():
        if not truth:
            continue
        boxes, scores = detector(image)
        found, missed, _ = module.match(boxes[scores >= tool.SCORE_THR], truth)
        assert (found, missed) == (len(truth), 0), name


# ------------------------------------------------ outputs never onto inputs
def _digest(path):
    return hashlib.sha256(open(path, 'rb').read()).hexdigest()


def _photo_png(folder, name='face.png'):
    """The photograph as a PNG of the test's own (the originals are never
    put at risk)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    cv2.imwrite(str(path), cv2.imread(PHOTO))
    return path


@pytest.mark.parametrize('overwrite', [[], ['--overwrite']])
def test_out_dir_on_the_input_folder_never_replaces_the_photograph(
    tool, checkpoint, tmp_path, overwrite
):
    photo = _photo_png(tmp_path / 'photos')
    before = _digest(photo)
    with pytest.raises(SystemExit) as err:
        run(
            tool, CONFIG, checkpoint['path'], photo.parent, '--out-dir',
            photo.parent, *overwrite,
        )  # fmt: skip
    message = str(err.value)
    assert f'the output {photo} is the input image {photo}' in message
    assert 'choose another --out-dir' in message
    assert '--overwrite' not in message  # no flag may replace an input
    assert _digest(photo) == before
    assert os.listdir(photo.parent) == ['face.png']  # nothing written


@pytest.mark.parametrize('link', [os.symlink, os.link])
def test_an_output_linked_to_an_input_is_refused_even_with_overwrite(
    tool, checkpoint, tmp_path, link
):
    photo = _photo_png(tmp_path / 'photos')
    before = _digest(photo)
    out = tmp_path / 'out'
    out.mkdir()
    link(photo, out / 'face.png')  # the drawing's name is the photograph
    with pytest.raises(SystemExit) as err:
        run(
            tool, CONFIG, checkpoint['path'], photo, '--out-dir', out,
            '--overwrite',
        )  # fmt: skip
    message = str(err.value)
    assert f'is the input image {photo} (the same file through a link' in (
        message
    )
    assert '--overwrite' not in message
    assert _digest(photo) == before
    assert not (out / 'face.json').exists()


def test_boxes_file_and_checkpoint_are_never_outputs(
    tool, checkpoint, tmp_path
):
    out = tmp_path / 'out'
    out.mkdir()
    boxes = out / 'grace_hopper.json'  # what the run would write
    boxes.write_text(json.dumps({PHOTO: [[150, 100, 370, 350]]}))
    before = boxes.read_text()
    with pytest.raises(SystemExit) as err:
        run(
            tool, CONFIG, checkpoint['path'], PHOTO, '--boxes', boxes,
            '--out-dir', out, '--overwrite',
        )  # fmt: skip
    assert f'is the --boxes file {boxes}' in str(err.value)
    assert boxes.read_text() == before
    # A hard link of the checkpoint where the drawing would go.
    weights = tmp_path / 'weights.pth'
    shutil.copy(checkpoint['path'], weights)
    before = _digest(weights)
    other = tmp_path / 'other'
    other.mkdir()
    os.link(weights, other / 'grace_hopper.png')
    with pytest.raises(SystemExit) as err:
        run(tool, CONFIG, weights, PHOTO, '--out-dir', other, '--overwrite')
    assert f'is the checkpoint {weights}' in str(err.value)
    assert _digest(weights) == before


# ------------------------------------------------------------ pixel budget
def _png_declaring(path, width, height, rows=4):
    """A small PNG whose header declares ``width`` x ``height`` pixels,
    with only ``rows`` rows of data (a decompression bomb's header)."""

    def chunk(kind, data):
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return (
            struct.pack('>I', len(data)) + kind + data + struct.pack('>I', crc)
        )

    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    data = zlib.compress(b'\0' * (3 * width + 1) * rows)
    path.write_bytes(
        b'\x89PNG\r\n\x1a\n'
        + chunk(b'IHDR', header)
        + chunk(b'IDAT', data)
        + chunk(b'IEND', b'')
    )
    return path


def test_a_decompression_bomb_is_refused_from_its_header(
    tool, checkpoint, tmp_path
):
    folder = tmp_path / 'photos'
    folder.mkdir()
    bomb = _png_declaring(folder / 'bomb.png', 20000, 20000)
    assert bomb.stat().st_size < 100_000  # 400 megapixels declared
    _photo_png(folder)
    out = tmp_path / 'out'
    printed = io.StringIO()
    with pytest.raises(SystemExit) as err:
        with contextlib.redirect_stdout(printed):
            tool.main(
                [CONFIG, checkpoint['path'], str(folder), '--out-dir',
                 str(out), '--boxes', str(_boxes(tmp_path))]
            )  # fmt: skip
    message = str(err.value)
    assert f'{bomb}: its header declares 20000x20000 = 400.0 megapixels' in (
        message
    )
    assert 'above the limit of 100' in message
    assert '--max-megapixels' in message
    # The other image of the folder was processed all the same.
    assert '1 image(s), 1 face(s)' in printed.getvalue()
    assert (out / 'face.json').exists() and (out / 'face.png').exists()
    assert not (out / 'bomb.json').exists()
    from mmaniso.deploy.images import header_size

    assert header_size(str(bomb)) == (20000, 20000)


def _boxes(tmp_path):
    path = tmp_path / 'boxes.json'
    path.write_text(
        json.dumps(
            {
                'face.png': [[150, 100, 370, 350]],
                'grace_hopper.jpg': [[150, 100, 370, 350]],
                'bomb.png': [],
            }
        )
    )
    return path


def test_max_megapixels_is_the_limit(tool, checkpoint, tmp_path):
    photo = _photo_png(tmp_path / 'photos')  # 512x600 = 0.31 MP
    argv = [CONFIG, checkpoint['path'], photo, '--boxes', _boxes(tmp_path)]
    with pytest.raises(SystemExit, match='0.3 megapixels, above the limit'):
        run(tool, *argv, '--out-dir', tmp_path / 'a', '--max-megapixels', 0.3)
    printed = run(
        tool, *argv, '--out-dir', tmp_path / 'b', '--max-megapixels', 0.31
    )
    assert '1 image(s), 1 face(s)' in printed


def test_unreadable_files_are_reported_and_the_others_processed(
    tool, checkpoint, tmp_path
):
    folder = tmp_path / 'photos'
    folder.mkdir()
    (folder / 'a_empty.jpg').write_bytes(b'')
    _photo_png(folder, 'b_face.png')
    (folder / 'c_text.png').write_text('not an image')
    png = cv2.imencode('.png', cv2.imread(PHOTO))[1].tobytes()
    (folder / 'd_cut.png').write_bytes(png[: len(png) // 2])  # truncated
    # OpenCV 4 decodes a cut JPEG with no error, its missing rows grey.
    jpg = cv2.imencode('.jpg', cv2.imread(PHOTO))[1].tobytes()
    (folder / 'e_cut.jpg').write_bytes(jpg[: len(jpg) * 9 // 10])
    out = tmp_path / 'out'
    printed = io.StringIO()
    with pytest.raises(SystemExit) as err:
        with contextlib.redirect_stdout(printed):
            tool.main([CONFIG, checkpoint['path'], str(folder), '--out-dir',
                       str(out)])  # fmt: skip
    message = str(err.value)
    assert message.startswith('error: cannot read 4 of 5 image(s)')
    assert f'{folder / "a_empty.jpg"}: the file is empty (0 bytes)' in message
    assert f'{folder / "c_text.png"}: not an image header' in message
    assert f'{folder / "d_cut.png"}: the file is cut short' in message
    assert f'{folder / "e_cut.jpg"}: the file is cut short' in message
    assert '1 image(s), 1 face(s)' in printed.getvalue()
    assert sorted(os.listdir(out)) == ['b_face.json', 'b_face.png']


def test_detection_copy_and_boxes_back_by_hand():
    from mmaniso.deploy.images import boxes_to_image, detection_copy

    image = np.zeros((400, 600, 3), np.uint8)
    image[100:200, 300:400] = 255
    small, factors = detection_copy(image, 6e4)
    assert small.shape == (200, 300, 3) and factors == (2.0, 2.0)
    assert small[50:100, 150:200].min() == 255  # the same place, halved
    same, one = detection_copy(image, 2.4e5)
    assert same is image and one == (1.0, 1.0)
    _, factors = detection_copy(np.zeros((300, 700, 3), np.uint8), 1e4)
    assert factors == (700 / 152, 300 / 65)  # int(700 s), int(300 s)
    boxes = boxes_to_image(
        np.array([[10.0, 20, 30, 40], [290, 190, 310, 210]]),
        (2.0, 2.0),
        image.shape,
    )
    np.testing.assert_array_equal(
        boxes,
        [[20, 40, 60, 80], [580, 380, 600, 400]],  # clipped
    )


def test_large_images_are_searched_on_a_reduced_copy(
    tool, checkpoint, detector, tmp_path, monkeypatch
):
    from mmaniso.deploy import face_detector

    seen = []

    class Recording(face_detector.MTCNNFaceDetector):
        def __call__(self, image):
            seen.append(image.shape)
            return super().__call__(image)

    monkeypatch.setattr(face_detector, 'MTCNNFaceDetector', Recording)
    out = tmp_path / 'out'
    printed = run(
        tool, CONFIG, checkpoint['path'], PHOTO, '--out-dir', out,
        '--detect-megapixels', 0.1,
    )  # fmt: skip
    scale = (1e5 / (512 * 600)) ** 0.5  # the photograph is 512x600
    copy = (int(600 * scale), int(512 * scale), 3)
    assert seen == [copy] and copy[0] * copy[1] <= 1e5
    assert f'searched for on a {copy[1]}x{copy[0]} copy' in printed
    assert 'above --detect-megapixels 0.1' in printed
    with open(out / 'grace_hopper.json') as f:
        (face,) = json.load(f)['faces']
    # The box is in the full image's pixels: where the detector finds the
    # face on the full photograph, to a few of the copy's pixels.
    full, _ = detector(cv2.imread(PHOTO))
    np.testing.assert_allclose(face['box'], full[0], atol=12)
    # The landmarks are cropped from the full image with that box: what
    # MMPose's own inference gives on the full photograph.
    from mmpose.apis import inference_topdown

    (sample,) = inference_topdown(
        checkpoint['model'],
        cv2.imread(PHOTO),
        np.array([face['box']], dtype=np.float32),
    )
    np.testing.assert_allclose(
        face['keypoints'], sample.pred_instances.keypoints[0], atol=0.02
    )


@pytest.mark.parametrize(
    'option, value',
    [('--score-thr', '2'), ('--score-thr', '-0.1'), ('--score-thr', 'nan'),
     ('--max-megapixels', '0'), ('--detect-megapixels', '-1')],
)  # fmt: skip
def test_out_of_range_settings_are_refused(tool, capsys, option, value):
    with pytest.raises(SystemExit):
        tool.parse_args([CONFIG, 'x.pth', PHOTO, option, value])
    said = capsys.readouterr().err
    assert option in said and value in said.lower()


# -------------------------------------------------------------- --onnx
@pytest.fixture(scope='module')
def graphs(checkpoint):
    """ONNX graphs that are not the config's model: another crop size,
    another dataset, another left-right pairing, and no metadata."""
    pytest.importorskip('onnxruntime')
    import onnx

    from mmaniso.deploy import export_onnx

    model, folder = checkpoint['model'], checkpoint['folder']
    out = dict(
        size=export_onnx(model, (1, 3, 32, 32), str(folder / 'size.onnx'))
    )
    path = export_onnx(model, (1, 3, 64, 64), str(folder / 'g.onnx'))
    proto = onnx.load(path)
    props = {p.key: p.value for p in proto.metadata_props}
    flip = list(model.dataset_meta['flip_indices'])
    for name, key, value in [
        ('dataset', 'dataset_name', '300w'),
        ('flip', 'flip_indices', flip[1:] + flip[:1]),
    ]:
        changed = dict(props, **{f'mmaniso.{key}': json.dumps(value)})
        onnx.helper.set_model_props(proto, changed)
        out[name] = str(folder / f'{name}.onnx')
        onnx.save(proto, out[name])
    del proto.metadata_props[:]
    out['bare'] = str(folder / 'bare.onnx')
    onnx.save(proto, out['bare'])
    with open(path, 'rb') as f:
        data = f.read()
    out['cut'] = str(folder / 'cut.onnx')
    with open(out['cut'], 'wb') as f:
        f.write(data[: len(data) // 2])
    out['text'] = str(folder / 'text.onnx')
    with open(out['text'], 'w') as f:
        f.write('not a graph')
    return out


@pytest.mark.parametrize('name, said', [
    ('size', 'input_size: graph [32, 32], config [64, 64]'),
    ('dataset', "dataset_name: graph '300w', config 'wflw'"),
    ('flip', 'flip_indices: graph'),
    ('bare', 'holds no mmaniso metadata'),
])  # fmt: skip
def test_onnx_of_another_model_is_refused_before_any_output(
    tool, checkpoint, graphs, tmp_path, name, said
):
    out = tmp_path / 'out'
    with pytest.raises(SystemExit) as err:
        run(
            tool, CONFIG, checkpoint['path'], PHOTO, '--boxes',
            _boxes(tmp_path), '--out-dir', out, '--onnx', graphs[name],
        )  # fmt: skip
    message = str(err.value)
    assert message.startswith(f'error: --onnx {graphs[name]}')
    assert said in message and CONFIG in message
    assert 'export_onnx.py' in message
    assert not out.exists() or os.listdir(out) == []


@pytest.mark.parametrize('name', ['cut', 'text'])
def test_a_corrupt_onnx_file_is_named_with_the_fix(
    tool, checkpoint, graphs, tmp_path, name
):
    with pytest.raises(SystemExit) as err:
        run(
            tool, CONFIG, checkpoint['path'], PHOTO, '--boxes',
            _boxes(tmp_path), '--out-dir', tmp_path / 'o', '--onnx',
            graphs[name],
        )  # fmt: skip
    message = str(err.value)
    assert f'{graphs[name]}: ONNX Runtime cannot load it' in message
    assert 'truncated or corrupt' in message
    assert 'tools/deployment/export_onnx.py' in message


# ------------------------------------------- ellipses of predicted scales
PREDICTED = osp.join(
    REPO, 'configs', 'synthface', 'res18_aniso-predicted-l1_synthface.py'
)
BOX = [150, 100, 370, 350]


@pytest.fixture(scope='module')
def predicting(tmp_path_factory):
    """A checkpoint of the predicted-scales config whose scales vary with
    the image and landmark, and its ONNX graph."""
    from mmengine.runner import save_checkpoint

    model = random_head_model(PREDICTED)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        fc = model.head.scale_fc
        fc.weight.copy_(torch.randn(fc.weight.shape, generator=gen) * 0.05)
    folder = tmp_path_factory.mktemp('predicting')
    path = str(folder / 'scales.pth')
    save_checkpoint(dict(state_dict=model.state_dict()), path)
    out = dict(path=path, model=model, folder=folder, onnx=None)
    if importlib.util.find_spec('onnxruntime') is not None:
        from mmaniso.deploy import export_onnx

        out['onnx'] = export_onnx(
            model, (1, 3, 64, 64), str(folder / 'scales.onnx'),
            dynamic_batch=True,
        )  # fmt: skip
    return out


def _run_with_box(tool, config, checkpoint, out, *extra, box=BOX):
    boxes = out.parent / f'{out.name}_boxes.json'
    boxes.write_text(json.dumps({PHOTO: [box]}))
    run(
        tool, config, checkpoint, PHOTO, '--boxes', boxes, '--out-dir', out,
        *extra,
    )  # fmt: skip
    with open(out / 'grace_hopper.json') as f:
        return json.load(f)


def test_json_has_each_landmarks_ellipse_and_score(tool, predicting, tmp_path):
    from mmpose.apis import inference_topdown

    result = _run_with_box(
        tool, PREDICTED, predicting['path'], tmp_path / 'out'
    )
    assert 'semi-axis along' in result['ellipses']
    assert 'degrees' in result['ellipses']
    (face,) = result['faces']
    ellipses = np.array(face['ellipses'])
    scores = np.array(face['keypoint_scores'])
    assert ellipses.shape == (98, 3) and scores.shape == (98,)
    # What MMPose's own top-down inference gives, angles in degrees.
    (sample,) = inference_topdown(
        predicting['model'], cv2.imread(PHOTO), np.array([BOX], np.float32)
    )
    expected = sample.pred_instances.keypoint_ellipses[0].astype(float)
    expected[:, 2] = np.degrees(expected[:, 2])
    assert np.ptp(expected[:, 0]) > 1  # the semi-axes vary
    np.testing.assert_allclose(ellipses, expected, atol=0.01)
    np.testing.assert_allclose(
        scores, sample.pred_instances.keypoint_scores[0], atol=1e-4
    )


def test_png_draws_each_landmarks_ellipse(tool, predicting, tmp_path):
    from mmaniso.deploy.inference import (
        ELLIPSE_COLOUR,
        draw_faces,
        draw_legend,
    )

    out = tmp_path / 'out'
    result = _run_with_box(tool, PREDICTED, predicting['path'], out)
    png = cv2.imread(str(out / 'grace_hopper.png'))
    # The same drawing without the ellipses differs where they run.
    (face,) = result['faces']
    bare = dict(face)
    del bare['ellipses']
    point_types = tool.layout_point_types(predicting['model'])
    plain = draw_faces(cv2.imread(PHOTO), [bare], point_types)
    changed = np.abs(png.astype(int) - plain.astype(int)).max(-1) > 0
    # The legend (one line more with the ellipse) is compared elsewhere.
    x1, y1, x2, y2 = draw_legend(
        np.zeros_like(png), point_types, True, [face['box']]
    )
    changed[y1:y2, x1:x2] = False
    assert changed.sum() > 200
    # Where the ellipses alone changed the picture, it moved towards
    # magenta (anti-aliased lines blend it in): blue and red up, green down.
    delta = (png.astype(int) - plain.astype(int))[changed]
    towards = (delta[:, 0] >= 0) & (delta[:, 1] <= 0) & (delta[:, 2] >= 0)
    assert towards.mean() > 0.99
    assert ELLIPSE_COLOUR == (255, 0, 255)


def test_onnx_gives_the_same_ellipses_and_scores(tool, predicting, tmp_path):
    pytest.importorskip('onnxruntime')
    by_torch = _run_with_box(
        tool, PREDICTED, predicting['path'], tmp_path / 'torch'
    )
    by_onnx = _run_with_box(
        tool, PREDICTED, predicting['path'], tmp_path / 'onnx', '--onnx',
        predicting['onnx'],
    )  # fmt: skip
    assert by_onnx['ellipses'] == by_torch['ellipses']
    (torch_face,), (onnx_face,) = by_torch['faces'], by_onnx['faces']
    for key, atol in (('keypoints', 0.05), ('keypoint_scores', 2e-4)):
        np.testing.assert_allclose(onnx_face[key], torch_face[key], atol=atol)
    a, b = np.array(onnx_face['ellipses']), np.array(torch_face['ellipses'])
    np.testing.assert_allclose(a[:, :2], b[:, :2], atol=0.05, rtol=1e-3)
    turn = (a[:, 2] - b[:, 2] + 90) % 180 - 90  # an axis is a line
    assert np.abs(turn).max() < 0.5


def test_a_model_without_scales_writes_no_ellipses(tool, checkpoint, tmp_path):
    result = _run_with_box(tool, CONFIG, checkpoint['path'], tmp_path / 'o')
    assert 'ellipses' not in result and 'keypoint_scores' not in result
    (face,) = result['faces']
    assert set(face) == {'box', 'score', 'keypoints'}


def test_onnx_without_scales_is_refused_for_a_config_with_them(
    tool, checkpoint, predicting, tmp_path
):
    pytest.importorskip('onnxruntime')
    from mmaniso.deploy import export_onnx

    # A graph of the same network without its scale layer.
    plain = export_onnx(
        checkpoint['model'], (1, 3, 64, 64), str(tmp_path / 'plain.onnx')
    )
    with pytest.raises(SystemExit) as err:
        _run_with_box(
            tool, PREDICTED, predicting['path'], tmp_path / 'o', '--onnx',
            plain,
        )  # fmt: skip
    assert "predict_scales: graph 'none', config 'anisotropic'" in str(
        err.value
    )


# ------------------------------------------------------------ papercuts
def test_a_folder_gives_every_format_opencv_reads_and_lists_the_rest(
    tool, checkpoint, tmp_path
):
    folder = tmp_path / 'photos'
    (folder / 'sub').mkdir(parents=True)
    photo = cv2.imread(PHOTO)
    for name in ('face_ppm.ppm', 'face_sr.sr', 'face_dib.dib'):
        assert cv2.imwrite(str(folder / name), photo)
    # Radiance HDR: OpenCV reads it, Pillow cannot read its header.
    assert cv2.imwrite(str(folder / 'face_hdr.hdr'), photo.astype(np.float32))
    # A PNG without an extension: OpenCV knows it by its first bytes.
    (folder / 'raw').write_bytes(cv2.imencode('.png', photo)[1].tobytes())
    (folder / 'notes.txt').write_text('the boxes are in boxes.json')
    stems = ['face_dib', 'face_hdr', 'face_ppm', 'face_sr', 'raw']
    boxes = tmp_path / 'boxes.json'
    names = [n.name for n in folder.iterdir() if n.is_file()]
    boxes.write_text(json.dumps({name: [BOX] for name in names}))
    out = tmp_path / 'out'
    printed = run(
        tool, CONFIG, checkpoint['path'], folder, '--boxes', boxes,
        '--out-dir', out,
    )  # fmt: skip
    assert '5 image(s), 5 face(s)' in printed
    assert sorted(os.listdir(out)) == sorted(
        f'{s}.{e}' for s in stems for e in ('json', 'png')
    )
    (said,) = [x for x in printed.splitlines() if 'skipped 2' in x]
    assert said.startswith(f'{folder}: skipped 2 entry(ies)')
    assert 'notes.txt: not an image OpenCV reads (.txt' in said
    assert 'sub: a folder (folders are not searched)' in said
    with pytest.raises(SystemExit, match='holds no image OpenCV reads'):
        run(tool, CONFIG, checkpoint['path'], folder / 'sub')


def test_onnx_runs_without_a_checkpoint(tool, checkpoint, graphs, tmp_path):
    boxes = _boxes(tmp_path)
    out = tmp_path / 'out'
    onnx_file = str(checkpoint['folder'] / 'g.onnx')  # written by graphs
    printed = run(
        tool, CONFIG, PHOTO, '--onnx', onnx_file, '--boxes', boxes,
        '--out-dir', out,
    )  # fmt: skip
    assert '1 image(s), 1 face(s)' in printed and 'note:' not in printed
    with open(out / 'grace_hopper.json') as f:
        model = json.load(f)['model']
    assert model == dict(
        config=CONFIG,
        config_sha256=_digest(CONFIG),
        onnx=onnx_file,
        onnx_sha256=_digest(onnx_file),
    )
    # A checkpoint given anyway is said to be unused, not read as an image.
    printed = run(
        tool, CONFIG, checkpoint['path'], PHOTO, '--onnx', onnx_file,
        '--boxes', boxes, '--out-dir', tmp_path / 'again',
    )  # fmt: skip
    assert f'note: {checkpoint["path"]} is not used with --onnx' in printed
    with pytest.raises(SystemExit):
        tool.parse_args([CONFIG, PHOTO])  # no checkpoint, no --onnx


def test_json_names_the_points_their_types_and_the_model(
    tool, checkpoint, tmp_path
):
    result = _run_with_box(tool, CONFIG, checkpoint['path'], tmp_path / 'o')
    assert result['model'] == dict(
        config=CONFIG,
        config_sha256=_digest(CONFIG),
        checkpoint=checkpoint['path'],
        checkpoint_sha256=_digest(checkpoint['path']),
    )
    points = result['points']
    names = checkpoint['model'].dataset_meta['keypoint_id2name']
    assert [p['index'] for p in points] == list(range(98))
    assert [p['name'] for p in points] == [names[i] for i in range(98)]
    from mmaniso.datasets.point_types import get_point_types

    wflw = get_point_types('wflw')
    for i, point in enumerate(points):
        on = [c.name for c in wflw.curves if i in c.indices]
        assert point['curves'] == on
        if i in wflw.corners:
            assert point['type'] == 'corner'
        elif on:
            assert point['type'] == 'curve point'
        else:
            assert point['type'] == 'isolated'
    kinds = {p['type'] for p in points}
    assert kinds == {'corner', 'curve point', 'isolated'}
    assert points[96]['type'] == 'isolated'  # a pupil


def _face_in(box, rng):
    """A face record: 98 points spread over ``box`` as a face's are."""
    x1, y1, x2, y2 = box
    unit = rng.uniform(0.1, 0.9, (98, 2))
    kpts = np.stack([x1 + unit[:, 0] * (x2 - x1), y1 + unit[:, 1] * (y2 - y1)])
    return dict(box=list(box), score=0.99, keypoints=kpts.T.tolist())


def test_markers_are_sized_to_the_face_not_the_image():
    from mmaniso.datasets.point_types import get_point_types
    from mmaniso.deploy.inference import draw_faces, marker_sizes

    rng = np.random.default_rng(0)
    # A 41x57 px face in a 4000x3000 photograph.
    image = np.full((3000, 4000, 3), 90, np.uint8)
    box = (2000, 1500, 2041, 1557)
    drawn = draw_faces(
        image, [_face_in(box, rng)], get_point_types('wflw'), legend=False
    )
    inside = drawn[box[1] + 2 : box[3] - 1, box[0] + 2 : box[2] - 1]
    untouched = (inside == 90).all(-1).mean()
    assert untouched > 0.4, untouched  # the face shows between the dots
    # A face that fills the picture gets markers one can see.
    radius, width = marker_sizes((50, 50, 950, 950))
    assert radius >= 6 and width >= 4
    assert marker_sizes(box) == (1, 1)


def test_the_png_has_a_legend_away_from_the_faces():
    from mmaniso.datasets.point_types import get_point_types
    from mmaniso.deploy.inference import (
        draw_faces,
        draw_legend,
        legend_entries,
    )

    wflw = get_point_types('wflw')
    assert legend_entries(wflw) == [
        'curve point (on its curve)', 'corner', 'isolated point',
        'face box, detector score',
    ]  # fmt: skip
    assert '1-scale ellipse' in legend_entries(wflw, ellipses=True)
    assert legend_entries(None)[0] == 'landmark'
    image = np.full((600, 800, 3), 200, np.uint8)
    face = _face_in((20, 20, 300, 320), np.random.default_rng(1))
    with_legend = draw_faces(image, [face], wflw)
    without = draw_faces(image, [face], wflw, legend=False)
    x1, y1, x2, y2 = draw_legend(image.copy(), wflw, False, [face['box']])
    assert x1 >= 300 or y1 >= 320  # not on the face (top left)
    changed = (with_legend != without).any(-1)
    assert changed[y1:y2, x1:x2].mean() > 0.5  # a dark box with text
    assert not changed[:y1, :].any() and not changed[y2:, :].any()
    assert not changed[:, :x1].any() and not changed[:, x2:].any()
