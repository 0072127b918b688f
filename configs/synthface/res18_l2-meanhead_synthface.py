# SynthFace ablation, the isotropic twin of
# res18_aniso-normalised-l2-nobalance_synthface.py: MMPose's MSELoss on the
# mean-shape head, the default sampler (res18_aniso-meanhead_synthface.py
# with L2). PoseBalancingHook still fills the head's mean shape.
_base_ = ['./res18_aniso-meanhead_synthface.py']

model = dict(
    head=dict(loss=dict(_delete_=True, type='MSELoss', use_target_weight=True))
)
