"""Puts the model's weights in channels-last memory order before training."""

import torch
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmpose.registry import HOOKS


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Converts the model to ``torch.channels_last`` once, before training.

    On CUDA, cuDNN then runs the convolutions in NHWC, which Tensor Cores
    prefer under AMP; a convolution whose weight is channels-last also
    returns channels-last output, so the NCHW batch of the data
    preprocessor is converted by the first layer. Add it to a config with
    ``custom_hooks = [..., dict(type='ChannelsLastHook')]``.

    In a distributed run the model is already wrapped when hooks run; its
    parameters keep their identity (DDP's buckets still point at them) but
    DDP may warn that gradient strides differ from its buckets'.
    """

    priority = 'VERY_HIGH'

    def before_train(self, runner) -> None:
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        model.to(memory_format=torch.channels_last)
        convs = [
            m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)
        ]
        done = sum(
            w.is_contiguous(memory_format=torch.channels_last) for w in convs
        )
        print_log(
            f'ChannelsLastHook: {done} of {len(convs)} convolution weights '
            'are channels-last',
            logger='current',
        )
