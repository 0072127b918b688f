"""The face-crop cache gives the model what the full images give it."""

import copy
import json
import os
import os.path as osp
import subprocess
import sys

import numpy as np
import pytest

from mmaniso.datasets.crop_cache import (
    augmentation_margin,
    crop_window,
    face_box,
    move_annotation,
    pipeline_margin_of,
    write_crop_cache,
)
from mmaniso.testing.wflw_like import write_wflw_like

# Each test module names the paper config and its own fixture size
# (as test_batch_augment.py): constants, not logic.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAPER = osp.join(REPO, 'configs/aniso_res50_wflw.py')
ANN = 'annotations/face_landmarks_wflw_train.json'
NUM = 6


@pytest.fixture(scope='module')
def full_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('full'))
    # Smaller than WFLW's 1000 px so that the test stays quick; faces near
    # the edges are common at this size, so black borders are exercised.
    write_wflw_like(root, NUM, long_side=480, face_px=(100, 200), seed=3)
    return root


@pytest.fixture(scope='module')
def margin():
    return pipeline_margin_of(PAPER)


def _dataset(root):
    from mmengine.config import Config
    from mmpose.registry import DATASETS
    from mmpose.utils import register_all_modules

    register_all_modules()
    cfg = Config.fromfile(PAPER).train_dataloader.dataset
    cfg = copy.deepcopy(cfg)
    cfg.data_root = root + '/'
    cfg.ann_file = ANN
    return DATASETS.build(cfg)


def _same_augmentation(ds_a, ds_b, index, seed):
    """Both datasets' sample ``index`` under the same random draws."""
    np.random.seed(seed)
    a = ds_a[index]
    np.random.seed(seed)
    b = ds_b[index]
    return a, b


def _pixels_and_targets(sample):
    img = sample['inputs'].numpy().astype(np.float64)  # (3, H, W)
    labels = sample['data_samples'].gt_instance_labels.keypoint_labels
    size = img.shape[-1]
    return img, labels.numpy().reshape(-1, 2) * size  # input pixels


def _cache(full_root, tmp_path, margin, **kwargs):
    """Writes the crop cache of the fixture's training file; its root."""
    cache = str(tmp_path / 'cache')
    write_crop_cache(
        full_root, [ANN], cache, margin, workers=1, progress=False, **kwargs
    )
    return cache


def test_lossless_cache_gives_the_same_input_and_targets(
    full_root, margin, tmp_path
):
    # No downscaling, PNG: the crop's pixels are the image's own, so the
    # warped inputs may differ only by OpenCV's rounding.
    cache = _cache(
        full_root, tmp_path, margin, max_size=100000, image_format='png'
    )
    full, cached = _dataset(full_root), _dataset(cache)
    assert len(full) == len(cached) == NUM
    for i in range(NUM):
        for seed in (i, 100 + i):
            a, b = _same_augmentation(full, cached, i, seed)
            img_a, kp_a = _pixels_and_targets(a)
            img_b, kp_b = _pixels_and_targets(b)
            assert np.abs(kp_a - kp_b).max() < 0.01
            assert np.abs(img_a - img_b).max() <= 1
            assert np.abs(img_a - img_b).mean() < 0.01


def test_downscaled_jpeg_cache_matches_up_to_interpolation(
    full_root, margin, tmp_path
):
    cache = _cache(full_root, tmp_path, margin, max_size=256)
    with open(osp.join(cache, ANN)) as f:
        ks = [img['crop'][3] for img in json.load(f)['images']]
    assert max(ks) < 1  # every crop was downscaled
    import cv2

    full, cached = _dataset(full_root), _dataset(cache)
    for i in range(NUM):
        a, b = _same_augmentation(full, cached, i, seed=7 + i)
        img_a, kp_a = _pixels_and_targets(a)
        img_b, kp_b = _pixels_and_targets(b)
        assert np.abs(kp_a - kp_b).max() < 0.5
        # The cache lost the finest grain (downscaled, JPEG); what is left
        # after a blur that removes it is the same picture.
        blur = [
            cv2.GaussianBlur(im.transpose(1, 2, 0), (0, 0), 3)
            for im in (img_a, img_b)
        ]
        assert np.abs(blur[0] - blur[1]).mean() < 2.0


def test_too_small_a_margin_shows(full_root, tmp_path):
    # The check above can fail: a crop of 1.2 box sides leaves black where
    # the augmented window reaches past it.
    cache = _cache(
        full_root, tmp_path, 1.2, max_size=100000, image_format='png'
    )
    full, cached = _dataset(full_root), _dataset(cache)
    worst = 0.0
    for i in range(NUM):
        a, b = _same_augmentation(full, cached, i, seed=i)
        worst = max(
            worst,
            np.abs(
                _pixels_and_targets(a)[0] - _pixels_and_targets(b)[0]
            ).mean(),
        )
    assert worst > 5


def _crop_corners(results):
    """Corners of the source window the warp reads, from the pipeline's own
    box centre, scale and rotation (TopdownAffine's aspect fix)."""
    centre = results['bbox_center'][0]
    w, h = results['bbox_scale'][0]
    aspect = 1.0  # the paper config's 256 x 256 input
    if w > h * aspect:
        h = w / aspect
    else:
        w = h * aspect
    rot = np.radians(results['bbox_rotation'][0])
    corners = []
    for sx in (-0.5, 0.5):
        for sy in (-0.5, 0.5):
            x, y = sx * w, sy * h
            corners.append(
                centre
                + [
                    x * np.cos(rot) - y * np.sin(rot),
                    x * np.sin(rot) + y * np.cos(rot),
                ]
            )
    return np.array(corners)


def test_margin_holds_every_sampled_augmentation(margin):
    # Independent of the formula: MMPose's own transforms, 3000 draws.
    from mmcv.transforms import Compose
    from mmengine.config import Config
    from mmpose.utils import register_all_modules

    register_all_modules()
    pipeline = Config.fromfile(PAPER).train_dataloader.dataset.pipeline
    steps = [
        s
        for s in pipeline
        if s['type'] in ('GetBBoxCenterScale', 'RandomBBoxTransform')
    ]
    compose = Compose(steps)
    side = 100.0
    np.random.seed(0)
    reach = 0.0
    for _ in range(3000):
        res = compose(
            dict(
                bbox=np.array([[0.0, 0.0, side, side]]), bbox_score=np.ones(1)
            )
        )
        corners = _crop_corners(res) - side / 2
        reach = max(reach, np.abs(corners).max())
    assert reach <= margin * side / 2
    # ...and the bound is not loose by much (it is reached at the extremes).
    assert reach > 0.85 * margin * side / 2


def test_margin_rules():
    base = [
        dict(type='GetBBoxCenterScale'),
        dict(type='TopdownAffine', input_size=(256, 256)),
    ]
    assert augmentation_margin(base) == pytest.approx(1.25)
    rot = (
        base[:1]
        + [
            dict(
                type='RandomBBoxTransform',
                shift_prob=0,
                scale_factor=(1, 1),
                rotate_factor=45,
            )
        ]
        + base[1:]
    )
    assert augmentation_margin(rot) == pytest.approx(
        1.25 * np.sqrt(2), rel=1e-4
    )
    wide = [base[0], dict(type='TopdownAffine', input_size=(192, 256))]
    assert augmentation_margin(wide) == pytest.approx(1.25 * 256 / 192)
    with pytest.raises(ValueError, match='RandomHalfBody.*--margin'):
        augmentation_margin(base + [dict(type='RandomHalfBody')])


def test_moved_coordinates_against_a_per_point_loop():
    rng = np.random.default_rng(0)
    pts = rng.uniform(0, 500, (98, 2))
    ann = dict(
        id=4,
        image_id=1,
        keypoints=[v for p in pts for v in (p[0], p[1], 2)],
        keypoints_clean=[v for p in pts for v in (p[0] + 1, p[1] - 1, 1)],
        bbox=[100.0, 120.0, 200.0, 180.0],
        center=[200.0, 210.0],
        scale=1.0,
        area=36000.0,
        box_size=189.7,
        attributes=dict(pose=1),
    )
    x0, y0, k = -17, 40, 0.37
    out = move_annotation(ann, x0, y0, k)
    for n in range(98):
        # The resize maps pixel centres: (p - x0 + 0.5) * k - 0.5.
        x = (pts[n, 0] - x0 + 0.5) * k - 0.5
        y = (pts[n, 1] - y0 + 0.5) * k - 0.5
        assert out['keypoints'][3 * n] == pytest.approx(x, abs=1e-4)
        assert out['keypoints'][3 * n + 1] == pytest.approx(y, abs=1e-4)
        assert out['keypoints'][3 * n + 2] == 2
        assert out['keypoints_clean'][3 * n] == pytest.approx(
            (pts[n, 0] + 1 - x0 + 0.5) * k - 0.5, abs=1e-4
        )
    assert out['center'] == pytest.approx(
        [(200 - x0 + 0.5) * k - 0.5, (210 - y0 + 0.5) * k - 0.5], abs=1e-4
    )
    bx, by, bw, bh = out['bbox']
    assert (bw, bh) == pytest.approx((200 * k, 180 * k), abs=1e-4)
    assert bx + bw / 2 == pytest.approx(out['center'][0], abs=1e-3)
    assert out['scale'] == pytest.approx(k)
    assert out['area'] == pytest.approx(36000 * k * k, abs=1e-3)
    assert out['box_size'] == pytest.approx(189.7 * k)
    assert out['attributes'] == dict(pose=1) and out['id'] == 4
    assert ann['center'] == [200.0, 210.0]  # the input is left alone


def test_window_is_centred_on_the_box():
    x0, y0, span, size = crop_window(300.0, 200.0, 100.0, 2.6, 512)
    assert span == 262 and size == 262
    # Pixel i spans [i - 0.5, i + 0.5]: the window's centre is the box's.
    assert x0 + span / 2 - 0.5 == pytest.approx(300.0, abs=0.5)
    assert y0 + span / 2 - 0.5 == pytest.approx(200.0, abs=0.5)
    assert crop_window(300.0, 200.0, 400.0, 2.6, 512)[3] == 512
    assert face_box(dict(bbox=[10, 20, 30, 60])) == (25.0, 50.0, 60.0)
    with pytest.raises(ValueError, match='record 3.*neither'):
        face_box(dict(id=1), 'record 3')
    with pytest.raises(ValueError, match='finite'):
        face_box(dict(center=[np.nan, 1], scale=1.0), 'x')


def test_cache_errors_name_the_record_and_keep_user_files(
    full_root, margin, tmp_path
):
    bad = tmp_path / 'bad'
    (bad / 'annotations').mkdir(parents=True)
    with open(osp.join(full_root, ANN)) as f:
        data = json.load(f)
    data['annotations'][2]['image_id'] = 999
    (bad / ANN).write_text(json.dumps(data))
    with pytest.raises(
        ValueError, match=r'annotation 2 \(id=3\).*image_id=999'
    ):
        write_crop_cache(
            str(bad), [ANN], str(tmp_path / 'c1'), margin, progress=False
        )
    # An annotation file at the output path that the cache did not write.
    out = tmp_path / 'c2'
    (out / 'annotations').mkdir(parents=True)
    (out / ANN).write_text('{"mine": 1}')
    with pytest.raises(FileExistsError, match='not written by the crop cache'):
        write_crop_cache(full_root, [ANN], str(out), margin, progress=False)
    assert (out / ANN).read_text() == '{"mine": 1}'
    with pytest.raises(ValueError, match='into its source'):
        write_crop_cache(full_root, [ANN], full_root, margin, progress=False)


def test_a_source_image_cut_short_is_refused_not_cached(margin, tmp_path):
    # OpenCV 4 decodes a cut JPEG with no error, its missing rows grey;
    # the cache would keep that crop for every epoch.
    root = str(tmp_path / 'src')
    write_wflw_like(root, NUM, long_side=480, face_px=(100, 200), seed=3)
    image = osp.join(root, 'images/train/000003.jpg')
    with open(image, 'rb') as f:
        data = f.read()
    with open(image, 'wb') as f:
        f.write(data[: len(data) * 9 // 10])
    out = tmp_path / 'cache'
    cut = r'000003\.jpg: the image file is cut short'
    with pytest.raises(ValueError, match=cut):
        write_crop_cache(root, [ANN], str(out), margin, progress=False)
    assert not (out / ANN).exists()


def test_cache_can_be_written_again(full_root, margin, tmp_path):
    out = str(tmp_path / 'c')
    first = write_crop_cache(
        full_root, [ANN], out, margin, workers=2, progress=False
    )
    again = write_crop_cache(
        full_root, [ANN], out, margin, workers=1, progress=False
    )
    assert first == again
    with open(first[ANN]) as f:
        data = json.load(f)
    assert len(data['images']) == NUM
    assert data['images'][0]['source_file_name'] == 'train/000000.jpg'


def test_command_line_prints_the_margin_and_the_options(tmp_path):
    root = tmp_path / 'data'
    write_wflw_like(str(root), 2, long_side=300, face_px=(60, 100))
    cfg = tmp_path / 'cfg.py'
    cfg.write_text(
        f"_base_ = ['{PAPER}']\n"
        f"train_dataloader = dict(dataset=dict(data_root='{root}/'))\n"
    )
    out = tmp_path / 'cache'
    proc = subprocess.run(
        [
            sys.executable,
            osp.join(REPO, 'tools/dataset_converters/make_crop_cache.py'),
            str(cfg),
            '--out',
            str(out),
            '--workers',
            '1',
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    assert 'margin 2.610' in proc.stdout
    assert f'train_dataloader.dataset.data_root={out}/' in proc.stdout
    with open(out / ANN) as f:
        data = json.load(f)
    assert len(data['images']) == 2
    # The command that rebuilds this cache, quoted when it goes stale; the
    # margin left to the pipeline, as it was given.
    command = data['info']['command']
    assert command.startswith(
        f'python tools/dataset_converters/make_crop_cache.py {cfg} '
        f'--out {out} '
    )
    assert '--margin' not in command and '--array' not in command


# -- the cache is tied to what it was cut from ------------------------------


@pytest.fixture
def small(tmp_path, margin):
    """Three WFLW-like photographs and their crop cache: (full, cache)."""
    full, cache = str(tmp_path / 'full'), str(tmp_path / 'cache')
    write_wflw_like(full, 3, long_side=300, face_px=(60, 100), seed=4)
    write_crop_cache(
        full, [ANN], cache, margin, max_size=256, workers=1, progress=False
    )
    return full, cache


def _precheck(tmp_path, root, config=PAPER):
    """What tools/train.py runs before building anything, training from
    ``root``."""
    from mmaniso.utils.launch import setup_run_config

    child = tmp_path / 'from_cache.py'
    child.write_text(
        f"_base_ = ['{config}']\n"
        f"train_dataloader = dict(dataset=dict(data_root='{root}/'))\n"
    )
    return setup_run_config(
        str(child), None, str(tmp_path / 'work'), 'none', ('train',)
    )


def _load(path):
    with open(path) as f:
        return json.load(f)


def _dump(path, data):
    with open(path, 'w') as f:
        json.dump(data, f)


def _repaint(path, seed):
    """Rewrites a source image with other pixels, as an edit would."""
    import cv2

    img = cv2.imread(path)
    noise = np.random.default_rng(seed).integers(0, 60, img.shape)
    cv2.imwrite(path, (img // 2 + noise).astype(np.uint8))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_fresh_cache_passes_the_precheck(small, tmp_path):
    _precheck(tmp_path, small[1])  # no error: the cache matches


def test_changed_source_image_is_refused_with_the_rebuild_command(
    small, tmp_path
):
    full, cache = small
    _repaint(osp.join(full, 'images/train/000001.jpg'), 0)
    with pytest.raises(ValueError) as err:
        _precheck(tmp_path, cache)
    msg = str(err.value)
    assert osp.join(cache, ANN) in msg
    assert 'train/000001.jpg' in msg and 'changed' in msg
    assert 'make_crop_cache.py' in msg and f'--out {cache}' in msg
    # A missing source image is a change too.
    os.remove(osp.join(full, 'images/train/000002.jpg'))
    with pytest.raises(ValueError, match='000002.jpg.*missing'):
        _precheck(tmp_path, cache)


def test_rebuilding_recuts_the_crops_of_a_changed_image(small, margin):
    import cv2

    full, cache = small
    data = _load(osp.join(cache, ANN))
    image = data['images'][1]
    crop = osp.join(cache, 'images', image['file_name'])
    before = cv2.imread(crop).astype(np.float64)
    _repaint(osp.join(full, 'images', image['source_file_name']), 1)
    write_crop_cache(
        full, [ANN], cache, margin, max_size=256, workers=1, progress=False
    )
    after = cv2.imread(crop).astype(np.float64)
    # The crop is cut again from the repainted image, not kept.
    x0, y0, span, _ = image['crop']
    from mmaniso.datasets.crop_cache import cut_crop

    fresh = cut_crop(
        cv2.imread(osp.join(full, 'images', image['source_file_name'])),
        x0,
        y0,
        span,
        image['width'],
    ).astype(np.float64)
    # Up to JPEG's rounding of the grain, the crop is the new one.
    assert np.abs(after - fresh).mean() < np.abs(before - fresh).mean() / 3


@pytest.mark.parametrize('edit', ['keypoint', 'reversed'])
def test_changed_source_annotations_are_refused(small, tmp_path, edit):
    full, cache = small
    data = _load(osp.join(full, ANN))
    if edit == 'keypoint':
        data['annotations'][0]['keypoints'][0] += 7.0
        expect = 'same ids in the same order, other content'
    else:
        data['annotations'].reverse()
        expect = 'same annotation ids in another order'
    _dump(osp.join(full, ANN), data)
    with pytest.raises(ValueError) as err:
        _precheck(tmp_path, cache)
    msg = str(err.value)
    assert osp.join(full, ANN) in msg and 'changed' in msg
    assert expect in msg and 'make_crop_cache.py' in msg


def test_edited_cache_file_is_refused(small, tmp_path):
    _, cache = small
    path = osp.join(cache, ANN)
    data = _load(path)
    data['info']['margin'] = 9.0  # claims a reach it does not hold
    _dump(path, data)
    with pytest.raises(ValueError, match='edited.*make_crop_cache.py'):
        _precheck(tmp_path, cache)


def test_cache_without_a_fingerprint_is_refused(small, tmp_path):
    _, cache = small
    path = osp.join(cache, ANN)
    data = _load(path)
    # What an earlier writer recorded.
    data['info'] = {
        k: data['info'][k]
        for k in ('description', 'source', 'margin', 'max_size')
    }
    _dump(path, data)
    with pytest.raises(ValueError) as err:
        _precheck(tmp_path, cache)
    msg = str(err.value)
    assert path in msg and 'without a fingerprint' in msg
    assert 'make_crop_cache.py' in msg


def test_margin_smaller_than_the_pipeline_reach_is_refused(
    tmp_path, margin
):
    full, cache = str(tmp_path / 'full'), str(tmp_path / 'cache')
    write_wflw_like(full, 2, long_side=300, face_px=(60, 100), seed=5)
    write_crop_cache(full, [ANN], cache, 1.2, workers=1, progress=False)
    with pytest.raises(ValueError) as err:
        _precheck(tmp_path, cache)
    msg = str(err.value)
    assert '1.2 box sides' in msg and f'{margin:.4g}' in msg
    # The rebuild takes the pipeline's reach: no --margin.
    assert 'make_crop_cache.py' in msg and '--margin' not in msg


def test_a_failed_write_changes_no_annotation_file(small, margin, monkeypatch):
    full, cache = small
    test_ann = 'annotations/face_landmarks_wflw_test.json'
    write_wflw_like(full, 2, split='test', long_side=300, face_px=(60, 100))
    write_crop_cache(
        full, [ANN, test_ann], cache, margin, workers=1, progress=False
    )
    before = {
        rel: open(osp.join(cache, rel)).read() for rel in (ANN, test_ann)
    }
    for rel in (ANN, test_ann):  # a corrected point in each source
        data = _load(osp.join(full, rel))
        data['annotations'][0]['keypoints'][1] += 3.0
        _dump(osp.join(full, rel), data)
    dump, calls = json.dump, []

    def failing(obj, f, *args, **kwargs):
        calls.append(f.name)
        if len(calls) == 2:
            raise OSError(28, 'No space left on device')
        return dump(obj, f, *args, **kwargs)

    monkeypatch.setattr(json, 'dump', failing)
    with pytest.raises(OSError, match='No space'):
        write_crop_cache(
            full, [ANN, test_ann], cache, margin, workers=1, progress=False
        )
    assert len(calls) == 2
    for rel, text in before.items():
        assert open(osp.join(cache, rel)).read() == text, rel
    leftovers = [n for n in os.listdir(osp.join(cache, 'annotations'))]
    assert not [n for n in leftovers if n.endswith('.part')]
