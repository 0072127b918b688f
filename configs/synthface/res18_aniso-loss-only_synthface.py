# SynthFace ablation, the paper's loss alone: AnisotropicLoss on MMPose's
# RegressionHead (direct coordinates, no mean shape) with the default
# sampler (no pose balancing); everything else as res18_aniso_synthface.py.
_base_ = ['./res18_aniso_synthface.py']

model = dict(head=dict(type='RegressionHead', loss=dict(input_size=(64, 64))))
train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True)
)
custom_hooks = [dict(type='SyncBuffersHook')]
