"""MMPose's own inference API on mmaniso's configs: ``init_model`` with a
trained checkpoint, ``inference_topdown`` and ``PoseLocalVisualizer``, as
docs/inference.md shows them; a head that predicts scales gives its
keypoint scores and ellipses through them.

The checkpoints come from one epoch (two iterations) of the fixture config
on the generated fixture, trained in this process.
"""

import json
import os.path as osp

import cv2
import numpy as np
import pytest
from conftest import REPO, data_root_options

FIXTURE = osp.join(REPO, 'configs', 'fixture', 'res18_wflw_fixture_aniso.py')
PREDICTED = dict(
    head=dict(
        predict_scales='anisotropic',
        loss=dict(
            scales='predicted', weighting='normalised', distance='mahalanobis'
        ),
    )
)


def _train(config, root, work_dir, model=None):
    """One epoch of ``config`` on the fixture at ``root``; the checkpoint."""
    from mmengine.config import Config
    from mmengine.runner import Runner

    import mmaniso  # noqa: F401

    cfg = Config.fromfile(config)
    options = dict(o.split('=', 1) for o in data_root_options(root))
    cfg.merge_from_dict(options)
    if model is not None:
        cfg.merge_from_dict(dict(model=model))
    cfg.train_cfg.max_epochs = 1
    cfg.train_cfg.val_interval = 10  # no validation
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=10)
    cfg.work_dir = str(work_dir)
    cfg.launcher = 'none'
    cfg.randomness = dict(seed=0)
    Runner.from_cfg(cfg).train()
    return osp.join(str(work_dir), 'epoch_1.pth')


@pytest.fixture(scope='module')
def trained(tmp_path_factory, wflw_fixture):
    folder = tmp_path_factory.mktemp('mmpose_api')
    config = folder / 'predicted.py'
    config.write_text(f'_base_ = [{FIXTURE!r}]\nmodel = {PREDICTED!r}\n')
    return dict(
        plain=(FIXTURE, _train(FIXTURE, wflw_fixture, folder / 'plain')),
        predicted=(
            str(config),
            _train(str(config), wflw_fixture, folder / 'predicted'),
        ),
        root=wflw_fixture,
    )


def _a_test_face(root):
    """A test image of the fixture and its face box (x1, y1, x2, y2)."""
    name = osp.join(root, 'annotations', 'face_landmarks_wflw_test.json')
    with open(name) as f:
        data = json.load(f)
    image = data['images'][0]
    ann = [a for a in data['annotations'] if a['image_id'] == image['id']][0]
    x, y, w, h = ann['bbox']
    path = osp.join(root, 'images', image['file_name'])
    return path, np.array([[x, y, x + w, y + h]], np.float32)


@pytest.mark.parametrize('kind', ['plain', 'predicted'])
def test_init_model_inference_topdown_and_the_visualiser(
    trained, kind, tmp_path
):
    from mmpose.apis import inference_topdown, init_model
    from mmpose.structures import merge_data_samples
    from mmpose.visualization import PoseLocalVisualizer

    config, checkpoint = trained[kind]
    # As docs/inference.md shows it.
    model = init_model(config, checkpoint, device='cpu')
    path, boxes = _a_test_face(trained['root'])
    results = inference_topdown(model, path, boxes)
    assert model.dataset_meta['dataset_name'] == 'wflw'
    (sample,) = results
    pred = sample.pred_instances
    assert pred.keypoints.shape == (1, 98, 2)
    assert np.isfinite(pred.keypoints).all()
    # The trained head predicts around its mean shape, inside the box.
    x1, y1, x2, y2 = boxes[0]
    centre = pred.keypoints[0].mean(0)
    assert x1 < centre[0] < x2 and y1 < centre[1] < y2
    if kind == 'predicted':
        ellipses, scores = pred.keypoint_ellipses, pred.keypoint_scores
        assert ellipses.shape == (1, 98, 3) and scores.shape == (1, 98)
        assert (ellipses[..., :2] > 0).all() and np.isfinite(ellipses).all()
        assert ((scores > 0) & (scores < 1)).all()
        # The scores follow the ellipses: the larger sqrt(a b) (crop and
        # image differ by one factor per axis here), the lower the score.
        size = np.sqrt(ellipses[0, :, 0] * ellipses[0, :, 1])
        order = np.argsort(size)
        assert (np.diff(scores[0][order]) <= 1e-6).all()
    else:
        assert 'keypoint_ellipses' not in pred
    # MMPose 1.1's OpenCV backend calls int() on a (1,) array, which
    # numpy 2 refuses; its matplotlib backend draws the same.
    visualizer = PoseLocalVisualizer(
        radius=1, line_width=1, backend='matplotlib'
    )
    visualizer.set_dataset_meta(model.dataset_meta)
    image = cv2.imread(path)[..., ::-1]  # RGB, as MMPose's demos
    out = tmp_path / 'vis.png'
    visualizer.add_datasample(
        'result',
        image,
        data_sample=merge_data_samples(results),
        draw_gt=False,
        draw_bbox=True,
        kpt_thr=0.0,
        show=False,
        out_file=str(out),
    )
    drawn = cv2.imread(str(out))
    assert drawn.shape == image.shape
    assert (drawn != image[..., ::-1]).any(-1).sum() > 50
