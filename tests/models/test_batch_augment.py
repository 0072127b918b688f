"""TopdownBatchAugment and BatchAugmentDataPreprocessor: MMPose's top-down
augmentation on the model's device gives MMPose's inputs and targets."""

import copy
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from mmaniso.models.data_preprocessors import (
    BatchAugmentDataPreprocessor,
    TopdownBatchAugment,
    topdown_augment_settings,
)
from mmaniso.ops.batch_affine import topdown_augment

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
PAPER = osp.join(REPO, 'configs/aniso_res50_wflw.py')
ANN = 'annotations/face_landmarks_wflw_train.json'
NUM = 6
MEAN = [123.675, 116.28, 103.53]
STD = [58.395, 57.12, 57.375]
MODULE = 'mmaniso.models.data_preprocessors.topdown_batch_augment'


@pytest.fixture(scope='module')
def paper_cfg():
    from mmengine.config import Config

    return Config.fromfile(PAPER)


@pytest.fixture(scope='module')
def paper_pipeline(paper_cfg):
    return paper_cfg.train_dataloader.dataset.pipeline


def _samples(b, k=6, seed=0):
    """Data samples as CropFeedDataset packs them (96-px sources)."""
    from mmengine.structures import InstanceData
    from mmpose.structures import PoseDataSample

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(b):
        s = PoseDataSample()
        gt = InstanceData()
        gt.bbox_centers = (48 + rng.normal(0, 3, (1, 2))).astype(np.float32)
        gt.bbox_scales = np.full((1, 2), 70.0, np.float32)
        gt.keypoints = rng.uniform(20, 76, (1, k, 2)).astype(np.float32)
        gt.keypoints_visible = np.ones((1, k), np.float32)
        s.gt_instances = gt
        s.set_metainfo(dict(flip_indices=list(range(k))[::-1]))
        out.append(s)
    return out


def _stack(samples, name):
    return torch.from_numpy(
        np.concatenate([getattr(s.gt_instances, name) for s in samples])
    )


def test_settings_from_the_paper_pipeline(paper_pipeline):
    assert topdown_augment_settings(paper_pipeline) == dict(
        input_size=(256, 256),
        # The paper config's values written out (DEFAULTS holds MMPose's).
        flip_prob=0.5,
        shift_factor=0.16,
        shift_prob=0.3,
        scale_factor=(0.75, 1.25),
        scale_prob=1.0,
        rotate_factor=60,
        rotate_prob=0.6,
    )
    # Without RandomFlip and RandomBBoxTransform nothing is drawn.
    bare = [s for s in paper_pipeline if s['type'] in ('TopdownAffine',)]
    settings = topdown_augment_settings(bare)
    assert settings['flip_prob'] == settings['rotate_prob'] == 0.0
    assert settings['shift_prob'] == settings['scale_prob'] == 0.0


@pytest.mark.parametrize(
    'change, match',
    [
        (lambda p: p.insert(2, dict(type='RandomHalfBody')), 'RandomHalfBody'),
        (lambda p: p[4].update(use_udp=True), 'UDP'),
        (lambda p: p[2].update(direction='vertical'), 'horizontally'),
        (
            lambda p: p[5].update(
                encoder=dict(type='MSRAHeatmap', input_size=(256, 256))
            ),
            'RegressionLabel',
        ),
        (lambda p: p.pop(4), 'no TopdownAffine'),
    ],
    ids=['half-body', 'udp', 'vertical-flip', 'heatmap', 'no-affine'],
)
def test_settings_refuse_what_cannot_move(paper_pipeline, change, match):
    pipeline = copy.deepcopy([dict(s) for s in paper_pipeline])
    change(pipeline)
    with pytest.raises(ValueError, match=match):
        topdown_augment_settings(pipeline)


def test_module_arguments(paper_pipeline):
    with pytest.raises(TypeError, match='takes its settings from pipeline'):
        TopdownBatchAugment(pipeline=paper_pipeline, flip_prob=0.2)
    with pytest.raises(TypeError, match='needs input_size'):
        TopdownBatchAugment(flip_prob=0.2)
    with pytest.raises(ValueError, match='rotate_prob must be in'):
        TopdownBatchAugment(input_size=(64, 64), rotate_prob=2.0)
    with pytest.raises(TypeError, match='seed must be an int'):
        TopdownBatchAugment(input_size=(64, 64), seed='1')
    aug = TopdownBatchAugment(pipeline=paper_pipeline)
    assert aug.input_size == (256, 256)
    assert 'rotate_factor=60' in repr(aug)


def test_registered_module_equals_the_function():
    from mmpose.registry import MODELS

    aug = MODELS.build(
        dict(type='TopdownBatchAugment', input_size=(64, 48), seed=3)
    )
    samples = _samples(5)
    images = torch.rand(5, 3, 96, 96) * 255
    out, returned = aug(images, samples)
    assert returned is samples
    ref = topdown_augment(
        images,
        _stack(samples, 'bbox_centers'),
        _stack(samples, 'bbox_scales'),
        _stack(samples, 'keypoints'),
        _stack(samples, 'keypoints_visible'),
        aug.last_params,
        (64, 48),
        torch.arange(6).flip(0),
    )
    assert out.shape == (5, 3, 48, 64)
    assert torch.equal(out, ref.images)
    for i, s in enumerate(samples):
        labels = s.gt_instance_labels
        assert torch.equal(
            labels.keypoint_labels, ref.keypoint_labels[i : i + 1]
        )
        assert torch.equal(
            labels.keypoint_weights, ref.keypoint_weights[i : i + 1]
        )
        assert torch.equal(labels.keypoints_visible, labels.keypoint_weights)
        assert s.metainfo['input_size'] == (64, 48)


def test_full_precision_under_amp():
    # MMEngine runs the data preprocessor inside the AMP context.
    images = torch.rand(4, 3, 96, 96) * 255
    plain = TopdownBatchAugment(input_size=(64, 64), seed=1)
    amp = TopdownBatchAugment(input_size=(64, 64), seed=1)
    a, b = _samples(4), _samples(4)
    ref, _ = plain(images, a)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out, _ = amp(images, b)
    assert out.dtype == torch.float32 and torch.equal(out, ref)
    for sa, sb in zip(a, b):
        assert torch.equal(
            sa.gt_instance_labels.keypoint_labels,
            sb.gt_instance_labels.keypoint_labels,
        )


def _draws(aug, b=16):
    aug(torch.zeros(b, 3, 96, 96), _samples(b))
    return torch.cat(
        [
            aug.last_params.flip[:, None].float(),
            aug.last_params.offset,
            aug.last_params.scale[:, None],
            aug.last_params.rotation[:, None],
        ],
        1,
    )


def test_same_seed_same_draws_and_ranks_differ(monkeypatch):
    def make(seed):
        return TopdownBatchAugment(input_size=(32, 32), seed=seed)

    a, b = make(7), make(7)
    first = _draws(a)
    assert torch.equal(first, _draws(b))
    # The stream goes on, and the global RNG does not touch it.
    torch.manual_seed(123)
    torch.rand(10)
    second = _draws(a)
    assert not torch.equal(first, second)
    assert torch.equal(second, _draws(b))
    # Rank r draws from seed + r.
    monkeypatch.setattr(f'{MODULE}.get_dist_info', lambda: (1, 2))
    rank1 = _draws(make(7))
    assert not torch.equal(rank1, first)
    monkeypatch.setattr(f'{MODULE}.get_dist_info', lambda: (0, 2))
    assert torch.equal(rank1, _draws(make(8)))


def test_without_a_seed_the_runs_seed_is_used():
    # MMEngine's Runner seeds torch with the run's seed (randomness.seed).
    torch.manual_seed(11)
    torch.rand(3)  # the stream's seed, not its position, counts
    assert torch.equal(
        _draws(TopdownBatchAugment(input_size=(32, 32))),
        _draws(TopdownBatchAugment(input_size=(32, 32), seed=11)),
    )


@pytest.fixture
def message_hub():
    """A message hub of its own, as a runner makes; afterwards the hub
    current before it is current again (a hub's 'iter' would otherwise
    reach the tests that follow)."""
    import uuid

    from mmengine.logging import MessageHub

    before = MessageHub.get_current_instance()
    hub = MessageHub.get_instance(f'batch-augment-{uuid.uuid4().hex}')
    yield hub
    # ManagerMixin makes the newest instance current; re-get the old one.
    MessageHub._instance_dict.move_to_end(before.instance_name)


def test_a_resumed_run_draws_what_the_uninterrupted_run_drew(message_hub):
    def at(aug, iteration, calls=1):
        message_hub.update_info('iter', iteration)
        return [_draws(aug) for _ in range(calls)]

    straight = TopdownBatchAugment(input_size=(32, 32), seed=5)
    whole = [at(straight, i) for i in range(6)]
    # A new process resumes at iteration 3 (its stream is fresh).
    resumed = TopdownBatchAugment(input_size=(32, 32), seed=5)
    for i in range(3, 6):
        assert torch.equal(at(resumed, i)[0], whole[i][0])
    # Every iteration draws anew; calls within one go on along the stream.
    assert len({tuple(w[0].flatten().tolist()) for w in whole}) == 6
    twice = at(TopdownBatchAugment(input_size=(32, 32), seed=5), 4, 2)
    assert torch.equal(twice[0], whole[4][0])
    assert not torch.equal(twice[1], twice[0])
    # Other seeds, other draws at the same iteration.
    other = at(TopdownBatchAugment(input_size=(32, 32), seed=6), 4)[0]
    assert not torch.equal(other, whole[4][0])


def test_iteration_seeds_are_unrelated_and_fit_a_generator():
    from mmaniso.models.data_preprocessors.topdown_batch_augment import (
        iteration_seed,
    )

    seeds = {iteration_seed(s, i) for s in range(4) for i in range(500)}
    assert len(seeds) == 2000
    assert all(0 <= v < 2**63 for v in seeds)
    # Neighbouring (seed, iteration) pairs do not collide as seed + i would.
    assert iteration_seed(1, 0) != iteration_seed(0, 1)


def test_flip_swaps_the_pairs_and_mirrors_the_points():
    kw = dict(shift_prob=0.0, scale_prob=0.0, rotate_prob=0.0)
    plain = TopdownBatchAugment(input_size=(64, 64), flip_prob=0.0, **kw)
    flip = TopdownBatchAugment(input_size=(64, 64), flip_prob=1.0, **kw)
    k = 6
    index = list(range(k))[::-1]
    images = torch.rand(3, 3, 96, 96)
    a, b = _samples(3, k), _samples(3, k)
    plain(images, a)
    flip(images, b)
    assert bool(flip.last_params.flip.all())
    for sa, sb in zip(a, b):
        pa = sa.gt_instance_labels.keypoint_labels[0] * 64
        pb = sb.gt_instance_labels.keypoint_labels[0] * 64
        # Slot i of the flipped sample holds point flip_indices[i],
        # mirrored about the input's centre line x = w / 2.
        assert torch.allclose(pb[:, 0], 64 - pa[index, 0], atol=1e-3)
        assert torch.allclose(pb[:, 1], pa[index, 1], atol=1e-3)


# -- against MMPose's CPU pipeline, on the face-crop cache -----------------


@pytest.fixture(scope='module')
def cache_root(tmp_path_factory, paper_pipeline):
    from mmaniso.datasets.crop_cache import (
        augmentation_margin,
        write_crop_cache,
    )
    from mmaniso.testing.wflw_like import write_wflw_like

    full = str(tmp_path_factory.mktemp('full'))
    cache = str(tmp_path_factory.mktemp('cache'))
    write_wflw_like(full, NUM, long_side=480, face_px=(100, 200), seed=5)
    margin = augmentation_margin(paper_pipeline)
    write_crop_cache(
        full, [ANN], cache, margin, max_size=256, workers=1, progress=False
    )
    return cache


def _dataset_cfg(paper_cfg, root):
    cfg = copy.deepcopy(paper_cfg.train_dataloader.dataset)
    cfg.data_root = root + '/'
    cfg.ann_file = ANN
    return cfg


def _mmpose_sample(dataset, index, params, i):
    """MMPose's sample ``index`` with the draws ``params[i]``."""
    from mmpose.datasets.transforms import RandomBBoxTransform, RandomFlip

    flip = 'horizontal' if bool(params.flip[i]) else None
    draws = (
        params.offset[i : i + 1].numpy(),
        params.scale[i : i + 1, None].numpy(),
        params.rotation[i : i + 1].numpy(),
    )
    # On the instances: they shadow the classes' decorated methods.
    for t in dataset.pipeline.transforms:
        if isinstance(t, RandomFlip):
            t._choose_direction = lambda: flip
        elif isinstance(t, RandomBBoxTransform):
            t._get_transform_params = lambda n: draws
    return dataset[index]


def test_same_draws_give_mmposes_targets_and_images(
    cache_root, paper_cfg, paper_pipeline
):
    from mmengine.dataset import default_collate
    from mmpose.registry import DATASETS
    from mmpose.utils import register_all_modules

    from mmaniso.datasets import CropFeedDataset

    register_all_modules()
    mmpose = DATASETS.build(_dataset_cfg(paper_cfg, cache_root))
    feed = CropFeedDataset(
        _dataset_cfg(paper_cfg, cache_root), source='decode'
    )
    diffs, flips, dropped = [], set(), 0
    for seed in (0, 1):
        aug = TopdownBatchAugment(pipeline=paper_pipeline, seed=seed)
        batch = default_collate([feed[i] for i in range(NUM)])
        out, samples = aug(batch['inputs'].float(), batch['data_samples'])
        params = aug.last_params
        for i in range(NUM):
            ref = _mmpose_sample(mmpose, i, params, i)
            labels = ref['data_samples'].gt_instance_labels
            # Targets, in input pixels: within 0.05 px.
            ours = samples[i].gt_instance_labels.keypoint_labels[0] * 256
            theirs = labels.keypoint_labels[0] * 256
            assert float((ours - theirs).abs().max()) < 0.05
            # Points that leave the crop get weight 0, as in MMPose.
            weights = samples[i].gt_instance_labels.keypoint_weights
            assert torch.equal(weights, labels.keypoint_weights)
            dropped += int((weights == 0).sum())
            flips.add(bool(params.flip[i]))
            diffs.append(
                (out[i] - ref['inputs'].float()).abs().flatten().numpy()
            )
    assert flips == {True, False}
    assert dropped > 0  # the draws did push points out of some crops
    # Images: the device warp is float. OpenCV rounds its warp to uint8;
    # OpenCV 4's fixed-point warp also snaps the sample positions to a
    # 1/32-px grid, up to 3 grey levels from an exact warp on a sharp edge
    # (measured over these 36 samples: max 0.51 with OpenCV 5.0, 2.56 with
    # OpenCV 4.10; mean 0.22).
    diff = np.concatenate(diffs)
    assert diff.mean() < 0.3, diff.mean()
    bound = 2.0 if int(cv2.__version__.split('.')[0]) >= 5 else 3.0
    assert diff.max() <= bound, (diff.max(), cv2.__version__)


# -- the data preprocessor ----------------------------------------------------


def _preprocessor(**aug):
    from mmpose.registry import MODELS

    return MODELS.build(
        dict(
            type='BatchAugmentDataPreprocessor',
            mean=MEAN,
            std=STD,
            bgr_to_rgb=True,
            batch_augments=[
                dict(type='TopdownBatchAugment', input_size=(64, 64), **aug)
            ],
        )
    )


def _batch(b=4, size=96):
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (b, 3, size, size), generator=g)
    return dict(inputs=images.to(torch.uint8), data_samples=_samples(b))


def test_preprocessor_trains_augmented_and_evaluates_as_mmposes():
    from mmpose.models.data_preprocessors import PoseDataPreprocessor

    pre = _preprocessor(seed=0)
    assert isinstance(pre, BatchAugmentDataPreprocessor)
    data = _batch()
    # Evaluation: PoseDataPreprocessor's output.
    stock = PoseDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True)
    assert torch.equal(
        pre(copy.deepcopy(data), training=False)['inputs'],
        stock(copy.deepcopy(data), training=False)['inputs'],
    )
    # Training: augment in BGR on 0-255 floats, then RGB and normalise.
    out = pre(copy.deepcopy(data), training=True)
    ref_aug = TopdownBatchAugment(input_size=(64, 64), seed=0)
    ref, _ = ref_aug(data['inputs'].float(), _samples(4))
    ref = (
        ref[:, [2, 1, 0]] - torch.tensor(MEAN)[:, None, None]
    ) / torch.tensor(STD)[:, None, None]
    assert out['inputs'].shape == (4, 3, 64, 64)
    assert torch.allclose(out['inputs'], ref, atol=1e-5)
    assert all(
        'keypoint_labels' in s.gt_instance_labels for s in out['data_samples']
    )
    # A list of crops (pseudo_collate) gives the same batch.
    listed = dict(data, inputs=list(data['inputs']))
    again = _preprocessor(seed=0)(listed, training=True)
    assert torch.equal(again['inputs'], out['inputs'])
    # No checkpoint difference with PoseDataPreprocessor.
    assert set(pre.state_dict()) == set(stock.state_dict())


def test_outside_the_crop_is_black_before_normalising():
    # Zoomed out 4x: the corners of the input lie outside the source.
    pre = _preprocessor(
        seed=0,
        flip_prob=0.0,
        shift_prob=0.0,
        rotate_prob=0.0,
        scale_factor=(4.0, 4.0),
    )
    out = pre(_batch(2, 40), training=True)['inputs']
    black = -torch.tensor(MEAN) / torch.tensor(STD)
    assert torch.allclose(out[:, :, 0, 0], black.expand(2, 3), atol=1e-5)


def test_preprocessor_without_augments_and_bad_arguments():
    from mmpose.models.data_preprocessors import PoseDataPreprocessor

    pre = BatchAugmentDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True)
    stock = PoseDataPreprocessor(mean=MEAN, std=STD, bgr_to_rgb=True)
    data = _batch(2, 32)
    assert torch.equal(
        pre(copy.deepcopy(data), training=True)['inputs'],
        stock(copy.deepcopy(data), training=True)['inputs'],
    )
    with pytest.raises(TypeError, match='batch_augments must be a list'):
        BatchAugmentDataPreprocessor(
            batch_augments=dict(type='TopdownBatchAugment')
        )
    aug = TopdownBatchAugment(input_size=(32, 32))
    with pytest.raises(ValueError, match='B data samples'):
        aug(torch.zeros(3, 3, 40, 40), _samples(2))
    bare = _samples(1)
    del bare[0].gt_instances.bbox_centers
    with pytest.raises(KeyError, match='CropFeedDataset'):
        aug(torch.zeros(1, 3, 40, 40), bare)
