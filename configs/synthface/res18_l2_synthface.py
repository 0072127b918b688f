# SynthFace study baseline: MMPose's MSELoss on the SoftWing baseline's
# backbone, input, sampler and schedule (res18_softwing_synthface.py).
_base_ = ['./res18_softwing_synthface.py']

model = dict(
    head=dict(loss=dict(_delete_=True, type='MSELoss', use_target_weight=True))
)
