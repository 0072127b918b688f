"""CropFeedDataset and the crop array: the CPU side of the device feed."""

import copy
import json
import os
import os.path as osp
import pickle
import re

import numpy as np
import pytest
import torch

from mmaniso.datasets import CropFeedDataset
from mmaniso.datasets.crop_cache import (
    augmentation_margin,
    crop_array_paths,
    write_crop_array,
    write_crop_cache,
)

# Each test module names the paper config and its own fixture size
# (as test_batch_augment.py): constants, not logic.
REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAPER = osp.join(REPO, 'configs/aniso_res50_wflw.py')
ANN = 'annotations/face_landmarks_wflw_train.json'
NUM = 5


@pytest.fixture(scope='module')
def paper_dataset_cfg():
    from mmengine.config import Config
    from mmpose.utils import register_all_modules

    register_all_modules()
    return Config.fromfile(PAPER).train_dataloader.dataset


@pytest.fixture(scope='module')
def cache(tmp_path_factory, paper_dataset_cfg):
    """A JPEG crop cache (crops of different sizes) and its array."""
    from mmaniso.testing.wflw_like import write_wflw_like

    full = str(tmp_path_factory.mktemp('full'))
    root = str(tmp_path_factory.mktemp('cache'))
    write_wflw_like(full, NUM, long_side=400, face_px=(50, 150), seed=2)
    margin = augmentation_margin(paper_dataset_cfg.pipeline)
    write_crop_cache(
        full, [ANN], root, margin, max_size=300, workers=1, progress=False
    )
    write_crop_array(osp.join(root, ANN), osp.join(root, 'images'), 300)
    return root


def _cfg(base, root):
    cfg = copy.deepcopy(base)
    cfg.data_root = root + '/'
    cfg.ann_file = ANN
    return cfg


def _feed(base, root, **kwargs):
    return CropFeedDataset(_cfg(base, root), **kwargs)


def test_array_and_decode_give_the_same_packed_samples(
    cache, paper_dataset_cfg
):
    import cv2

    array = _feed(paper_dataset_cfg, cache)
    decode = _feed(paper_dataset_cfg, cache, source='decode')
    assert len(array) == len(decode) == NUM
    assert array.crop_size == decode.crop_size == 300
    inner = array.dataset
    sides = []
    for i in range(NUM):
        a, d = array[i], decode[i]
        assert a['inputs'].shape == (3, 300, 300)
        assert a['inputs'].dtype == torch.uint8
        assert torch.equal(a['inputs'], d['inputs'])
        # The stored crop at the top left, black beyond it.
        info = inner.get_data_info(i)
        crop = cv2.imread(info['img_path'])
        h, w = crop.shape[:2]
        sides.append(w)
        chw = a['inputs'].numpy()
        assert np.array_equal(chw[:, :h, :w], crop.transpose(2, 0, 1))
        assert not chw[:, h:].any() and not chw[:, :, w:].any()
        # The annotation in the crop's pixels; the box padded as
        # GetBBoxCenterScale pads it (1.25).
        gt = a['data_samples'].gt_instances
        np.testing.assert_array_equal(gt.keypoints, info['keypoints'])
        np.testing.assert_array_equal(
            gt.keypoints_visible, info['keypoints_visible']
        )
        np.testing.assert_array_equal(gt.bbox_centers, info['bbox_center'])
        np.testing.assert_allclose(
            gt.bbox_scales, info['bbox_scale'] * 1.25, rtol=1e-6
        )
        meta = a['data_samples'].metainfo
        assert meta['flip_indices'] == inner.metainfo['flip_indices']
        assert (
            meta['id'] == info['id'] and meta['img_path'] == info['img_path']
        )
    assert min(sides) < 300  # some crops were padded


def test_no_per_sample_deep_copy(cache, paper_dataset_cfg, monkeypatch):
    feed = _feed(paper_dataset_cfg, cache)
    feed.full_init()
    mmpose = feed.dataset
    calls = []
    original = copy.deepcopy

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(copy, 'deepcopy', counting)
    for i in range(NUM):
        feed[i]
    assert not calls
    mmpose[0]  # MMPose's own pipeline copies the record and metainfo
    assert calls


def test_collated_batch_and_a_worker(cache, paper_dataset_cfg):
    from mmengine.dataset import default_collate
    from torch.utils.data import DataLoader

    feed = _feed(paper_dataset_cfg, cache)
    batch = default_collate([feed[i] for i in range(4)])
    assert batch['inputs'].shape == (4, 3, 300, 300)
    assert len(batch['data_samples']) == 4
    # Pickled (a spawned worker), the dataset leaves its mapping behind
    # and opens its own.
    clone = pickle.loads(pickle.dumps(feed))
    assert clone._array is None
    assert torch.equal(clone[1]['inputs'], feed[1]['inputs'])
    loader = DataLoader(
        feed, batch_size=4, num_workers=1, collate_fn=default_collate
    )
    first = next(iter(loader))
    assert torch.equal(first['inputs'], batch['inputs'])


def test_wrapped_dataset_serves_balancing_and_hooks(cache, paper_dataset_cfg):
    from mmaniso.datasets import PoseBalancedSampler
    from mmaniso.datasets.training_shapes import (
        pipeline_setting,
        read_pose_annotations,
    )

    feed = _feed(paper_dataset_cfg, cache)
    assert pipeline_setting(feed, 'GetBBoxCenterScale', 'padding') == 1.25
    assert pipeline_setting(feed, 'TopdownAffine', 'input_size') == (256, 256)
    shapes = read_pose_annotations(feed)
    assert shapes.keypoints.shape == (NUM, 98, 2)
    sampler = PoseBalancedSampler(feed, num_bins=2, seed=0)
    assert set(sampler) <= set(range(NUM))
    assert feed.metainfo['dataset_name'] == 'wflw'


def test_errors_name_the_fix(cache, paper_dataset_cfg, tmp_path):
    with pytest.raises(ValueError, match='source must be one of'):
        _feed(paper_dataset_cfg, cache, source='lmdb')
    with pytest.raises(ValueError, match='not crop_size=256'):
        _feed(paper_dataset_cfg, cache, crop_size=256).full_init()
    small = _feed(paper_dataset_cfg, cache, source='decode', crop_size=64)
    with pytest.raises(ValueError, match='larger than crop_size=64'):
        small[0]
    with pytest.raises(FileNotFoundError, match='make_crop_cache.py'):
        _feed(
            paper_dataset_cfg, cache, array_file=str(tmp_path / 'x.crops.npy')
        ).full_init()


def test_array_writer_refuses_foreign_files_and_rewrites_its_own(cache):
    ann = osp.join(cache, ANN)
    array, index = crop_array_paths(ann)
    with open(index) as f:
        meta = json.load(f)
    assert meta['size'] == 300 and len(meta['ids']) == NUM
    before = np.load(array, mmap_mode='r').copy()
    write_crop_array(ann, osp.join(cache, 'images'), progress=False)
    # Its own files are rewritten: the largest crop sets the size now.
    again = np.load(array, mmap_mode='r')
    s = again.shape[-1]
    assert s <= 300 and np.array_equal(again, before[:, :, :s, :s])
    write_crop_array(ann, osp.join(cache, 'images'), 300, progress=False)
    with open(index, 'w') as f:
        json.dump(dict(description='somebody else'), f)
    with pytest.raises(FileExistsError, match='not written by the crop'):
        write_crop_array(ann, osp.join(cache, 'images'), 300, progress=False)
    meta_ok = dict(meta)
    with open(index, 'w') as f:
        json.dump(meta_ok, f)
    with pytest.raises(ValueError, match='larger than the array'):
        write_crop_array(ann, osp.join(cache, 'images'), 32, progress=False)
    # A failed write leaves the earlier array in place.
    assert np.load(array, mmap_mode='r').shape == (NUM, 3, 300, 300)


# -- the array is tied to its annotation file and its index ----------------


@pytest.fixture
def own_cache(tmp_path, paper_dataset_cfg):
    """A crop cache with its array, this test's own: (full, cache)."""
    from mmaniso.testing.wflw_like import write_wflw_like

    full, cache = str(tmp_path / 'full'), str(tmp_path / 'cache')
    write_wflw_like(full, 4, long_side=300, face_px=(50, 100), seed=6)
    margin = augmentation_margin(paper_dataset_cfg.pipeline)
    write_crop_cache(
        full, [ANN], cache, margin, max_size=128, workers=1, progress=False
    )
    write_crop_array(
        osp.join(cache, ANN), osp.join(cache, 'images'), 128, progress=False
    )
    return full, cache


def _reversed_ids(array, index, full):
    meta = json.load(open(index))
    meta['ids'].reverse()
    json.dump(meta, open(index, 'w'))


def _edited_size(array, index, full):
    meta = json.load(open(index))
    meta['size'] = 64
    json.dump(meta, open(index, 'w'))


def _reshaped(array, index, full):
    rows = np.load(array)
    n, c, s, _ = rows.shape
    np.save(array, np.ascontiguousarray(rows.reshape(n, c, s // 2, 2 * s)))


def _random_bytes(array, index, full):
    size = osp.getsize(array)
    with open(array, 'wb') as f:
        f.write(np.random.default_rng(0).bytes(size))


def _truncated(array, index, full):
    with open(array, 'r+b') as f:
        f.truncate(osp.getsize(array) // 2)


def _other_rows(array, index, full):
    rows = np.load(array)
    np.save(array, np.ascontiguousarray(rows[::-1]))


def _annotations_rewritten(array, index, full):
    # The cache written again (another crop size): the array is stale.
    cache = osp.dirname(osp.dirname(index))
    margin = json.load(open(osp.join(cache, ANN)))['info']['margin']
    write_crop_cache(
        full, [ANN], cache, margin, max_size=96, workers=1, progress=False
    )


ATTACKS = {
    'reversed ids': (_reversed_ids, r'ids are not those of'),
    'edited size': (_edited_size, r'index was edited'),
    'reshaped npy': (_reshaped, r'not a pair'),
    'random bytes': (_random_bytes, r'not a readable \.npy'),
    'truncated': (_truncated, r'truncated'),
    'other rows': (_other_rows, r'rows are not the ones packed'),
    'annotations rewritten': (_annotations_rewritten, r'another version'),
}


@pytest.mark.parametrize('attack', sorted(ATTACKS))
def test_array_that_does_not_match_is_refused(
    own_cache, paper_dataset_cfg, attack
):
    full, cache = own_cache
    array, index = crop_array_paths(osp.join(cache, ANN))
    edit, reason = ATTACKS[attack]
    edit(array, index, full)
    with pytest.raises(ValueError) as err:
        feed = _feed(paper_dataset_cfg, cache)
        feed.full_init()
        [feed[i] for i in range(len(feed))]
    msg = str(err.value)
    assert re.search(reason, msg), msg
    # The file and the command that rebuilds it.
    assert array in msg or index in msg, msg
    assert 'make_crop_cache.py' in msg and '--array' in msg, msg


def test_array_broken_after_the_check_names_the_file(
    own_cache, paper_dataset_cfg
):
    # A worker opens the array after full_init: a file cut short in
    # between is named, not numpy's bare "mmap length" error.
    full, cache = own_cache
    array, index = crop_array_paths(osp.join(cache, ANN))
    feed = _feed(paper_dataset_cfg, cache)
    feed.full_init()
    _truncated(array, index, full)
    with pytest.raises(ValueError) as err:
        feed[0]
    msg = str(err.value)
    assert array in msg and 'make_crop_cache.py' in msg, msg


@pytest.mark.parametrize('source', ['array', 'decode'])
def test_feed_refuses_a_cache_whose_source_changed(
    own_cache, paper_dataset_cfg, source
):
    import cv2

    full, cache = own_cache
    path = osp.join(full, 'images/train/000002.jpg')
    cv2.imwrite(path, 255 - cv2.imread(path))
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with pytest.raises(ValueError) as err:
        _feed(paper_dataset_cfg, cache, source=source).full_init()
    msg = str(err.value)
    assert 'train/000002.jpg' in msg and 'changed' in msg
    assert 'make_crop_cache.py' in msg


def test_feed_refuses_a_margin_below_its_pipeline_reach(
    tmp_path, paper_dataset_cfg
):
    from mmaniso.testing.wflw_like import write_wflw_like

    full, cache = str(tmp_path / 'full'), str(tmp_path / 'cache')
    write_wflw_like(full, 2, long_side=300, face_px=(50, 100), seed=7)
    write_crop_cache(
        full, [ANN], cache, 1.5, max_size=128, workers=1, progress=False
    )
    reach = augmentation_margin(paper_dataset_cfg.pipeline)
    feed = _feed(paper_dataset_cfg, cache, source='decode')
    with pytest.raises(ValueError) as err:
        feed.full_init()
    assert '1.5 box sides' in str(err.value)
    assert f'reaches {reach:.4g} box sides' in str(err.value)
