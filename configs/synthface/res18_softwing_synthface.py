# SynthFace baseline for `make demo` and the SynthFace study: MMPose's
# top-down regression with SoftWingLoss on a small ResNet18 (half width,
# trained from scratch: no download here) at 64x64, 15 epochs of the 2,000
# training faces at batch 32 (945 iterations).
# Generate the data with:
#   python tools/dataset_converters/make_synthface.py data/synthface
_base_ = ['../fixture/res18_wflw_fixture.py']

data_root = 'data/synthface/'
model = dict(backbone=dict(base_channels=32), head=dict(in_channels=256))

max_epochs = 15
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=1e-3))
param_scheduler = [
    dict(type='LinearLR', begin=0, end=100, start_factor=0.01, by_epoch=False),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_epochs,
        milestones=[11, 14],
        gamma=0.1,
        by_epoch=True,
    ),
]
train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(data_root=data_root),
)
val_dataloader = dict(
    batch_size=64,
    num_workers=2,
    persistent_workers=True,
    dataset=dict(data_root=data_root),
)
test_dataloader = val_dataloader
default_hooks = dict(
    logger=dict(interval=20), checkpoint=dict(interval=max_epochs)
)
auto_scale_lr = dict(base_batch_size=32)
