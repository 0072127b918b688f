"""ChannelsLastHook puts every convolution weight in NHWC order."""

import torch
from mmengine.model import BaseModel

from mmaniso.engine.hooks import ChannelsLastHook


class _Net(BaseModel):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3)
        self.deep = torch.nn.Sequential(torch.nn.Conv2d(8, 4, 1))

    def forward(self, inputs, data_samples=None, mode='tensor'):
        return self.deep(self.conv(inputs))


class _Runner:
    def __init__(self, model):
        self.model = model


def test_every_conv_weight_becomes_channels_last_and_output_is_unchanged():
    torch.manual_seed(0)
    net = _Net()
    x = torch.randn(2, 3, 9, 9)
    before = net(x)
    assert not net.conv.weight.is_contiguous(memory_format=torch.channels_last)
    ChannelsLastHook().before_train(_Runner(net))
    for conv in (net.conv, net.deep[0]):
        assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    after = net(x)
    assert after.is_contiguous(memory_format=torch.channels_last)
    assert torch.allclose(before, after, atol=1e-6)


def test_registered_for_configs():
    from mmpose.registry import HOOKS

    import mmaniso  # noqa: F401

    assert HOOKS.get('ChannelsLastHook') is ChannelsLastHook
