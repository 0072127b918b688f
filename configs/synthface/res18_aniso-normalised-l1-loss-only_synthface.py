# SynthFace ablation, the normalised anisotropic L1 alone: its loss
# (res18_aniso-normalised-l1_synthface.py) on MMPose's RegressionHead with
# the default sampler, no mean-shape head and no pose balancing, beside L1
# (res18_l1_synthface.py) on the same head.
_base_ = ['./res18_aniso-normalised-l1_synthface.py']

model = dict(head=dict(type='RegressionHead', loss=dict(input_size=(64, 64))))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True)
)
custom_hooks = [dict(type='SyncBuffersHook')]
