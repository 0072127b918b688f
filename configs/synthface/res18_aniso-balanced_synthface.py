# SynthFace ablation, the paper's loss + pose balancing: as the full set-up
# (res18_aniso_synthface.py) without the mean-shape head (MMPose's
# RegressionHead predicts coordinates directly).
_base_ = ['./res18_aniso_synthface.py']

model = dict(head=dict(type='RegressionHead', loss=dict(input_size=(64, 64))))
custom_hooks = [dict(type='SyncBuffersHook')]
