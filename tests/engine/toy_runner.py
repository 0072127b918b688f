"""A tiny MMEngine Runner (a linear model on a few vectors) for hook tests:
builds and trains in about a second, with whatever hooks a test adds."""

import itertools

import torch
from mmengine.model import BaseModel
from mmengine.runner import Runner
from mmengine.structures import BaseDataElement
from torch import nn
from torch.utils.data import Dataset

import mmaniso  # noqa: F401  (registers the hooks)

_RUNS = itertools.count()  # one logger instance per runner


class ToyModel(BaseModel):
    """``loss = mean((w x - y)^2)`` over a batch of (x, y) pairs."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 1)
        with torch.no_grad():  # the same start in every run
            self.linear.weight.copy_(torch.tensor([[0.3, -0.2]]))
            self.linear.bias.fill_(0.1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs)  # (B, 3): two features and the target
        out = self.linear(x[:, :2])[:, 0]
        if mode == 'loss':
            return dict(loss_toy=((out - x[:, 2]) ** 2).mean())
        return out


class ToyDataset(Dataset):
    """``num`` samples (x, y); sample ``bad`` (if given) has NaN in x.

    Each sample carries a data sample whose metainfo names it, as MMPose's
    do (``img_path``, ``id``).
    """

    def __init__(self, num=8, bad=None, ann_file=None):
        self.num = num
        self.bad = bad
        self.ann_file = ann_file
        self.metainfo = {}

    def __len__(self):
        return self.num

    def __getitem__(self, idx):
        x = torch.tensor([idx / self.num, 1.0, 0.5 * idx / self.num])
        if idx == self.bad:
            x[0] = float('nan')
        sample = BaseDataElement(
            metainfo=dict(img_path=f'images/face_{idx:03d}.png', id=idx)
        )
        return dict(inputs=x, data_samples=sample)


def toy_runner(
    work_dir,
    dataset=None,
    max_epochs=2,
    custom_hooks=(),
    checkpoint=None,
    resume=False,
    load_from=None,
    lr=0.1,
):
    """A Runner on :class:`ToyDataset` with batch 2, checkpoints every
    epoch (``checkpoint``: the checkpoint hook's config)."""
    checkpoint = checkpoint or dict(type='CheckpointHook', interval=1)
    return Runner(
        model=ToyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dataset if dataset is not None else ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=False),
            batch_size=2,
            num_workers=0,
            collate_fn=dict(type='pseudo_collate'),
        ),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=lr)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(checkpoint=checkpoint, logger=None),
        custom_hooks=list(custom_hooks),
        default_scope='mmpose',
        resume=resume,
        load_from=load_from,
        experiment_name=f'toy_{next(_RUNS)}',
    )
