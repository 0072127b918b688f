# SynthFace ablation, the normalised anisotropic SoftWing alone: its loss
# (res18_aniso-normalised-softwing_synthface.py) on MMPose's RegressionHead
# with the default sampler, no mean-shape head and no pose balancing, beside
# the true SoftWing (res18_softwing-true_synthface.py) on the same head.
_base_ = ['./res18_aniso-normalised-softwing_synthface.py']

model = dict(head=dict(type='RegressionHead', loss=dict(input_size=(64, 64))))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True)
)
custom_hooks = [dict(type='SyncBuffersHook')]
