"""Stock MMPose Wing/SoftWing are L1 in MMPose's frame; the true ones not.

MMPose regresses coordinates divided by the input size, so ω and ε given in
pixels (the stock recipes) leave every error in the linear branch. The
`-true` configs convert the published pixel values to that frame.
"""

import os.path as osp

import pytest
import torch
from conftest import REPO
from mmengine.config import Config
from mmpose.registry import MODELS

import mmaniso  # noqa: F401  (registers)

BASELINES = osp.join(REPO, 'configs', 'baselines')


def _loss(name):
    cfg = Config.fromfile(osp.join(BASELINES, f'{name}.py'))
    return MODELS.build(cfg.model.head.loss)


def _ratio_to_l1(loss, error_px, crop=256, seed=0):
    """loss / L1 on errors of a typical size, in pixels of the crop."""
    gen = torch.Generator().manual_seed(seed)
    target = torch.rand(32, 98, 2, generator=gen)
    noise = torch.randn(32, 98, 2, generator=gen)
    output = target + noise * error_px / crop
    weight = torch.ones(32, 98, 1)
    l1 = MODELS.build(dict(type='L1Loss', use_target_weight=True))
    return float(loss(output, target, weight) / l1(output, target, weight))


@pytest.mark.parametrize(
    'stock, tolerance',
    [('res50_softwing_wflw', 1e-5), ('res50_wing_wflw', 0.02)],
)
def test_stock_losses_are_l1_up_to_a_constant(stock, tolerance):
    loss = _loss(stock)
    ratios = [_ratio_to_l1(loss, px) for px in (1, 3, 5, 10)]
    assert max(ratios) / min(ratios) - 1 < tolerance, ratios


@pytest.mark.parametrize(
    'true', ['res50_softwing-true_wflw', 'res50_wing-true_wflw']
)
def test_true_losses_leave_the_linear_branch_on_typical_errors(true):
    loss = _loss(true)
    ratios = [_ratio_to_l1(loss, px) for px in (1, 3, 5, 10)]
    # Not L1: the ratio to L1 moves by far more than rounding with the
    # error size, because errors of a few pixels reach the log branch.
    assert max(ratios) / min(ratios) > 1.3, ratios


def test_true_softwing_is_the_pixel_formula_scaled():
    # SoftWing with omega/epsilon divided by 256 on coordinates divided by
    # 256 is the pixel SoftWing divided by 256, coordinate by coordinate.
    loss = _loss('res50_softwing-true_wflw')
    d = torch.tensor([0.5, 1.5, 3.0, 8.0])  # pixels
    b = 2.0 - 20.0 * torch.log1p(torch.tensor(2.0 / 0.5))
    pixel = torch.where(d < 2.0, d, 20.0 * torch.log1p(d / 0.5) + b)
    output = torch.zeros(1, 4, 2)
    output[0, :, 0] = d / 256
    got = loss(output, torch.zeros(1, 4, 2), torch.ones(1, 4, 1))
    torch.testing.assert_close(got, pixel.sum() / 256, rtol=1e-5, atol=0)
