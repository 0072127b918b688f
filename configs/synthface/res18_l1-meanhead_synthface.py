# SynthFace ablation, the isotropic twin of the anisotropic rows that use the
# mean-shape head without pose balancing: MMPose's L1Loss on the mean-shape
# head, the default sampler (res18_aniso-meanhead_synthface.py with L1).
# PoseBalancingHook still fills the head's mean shape from 9 pose bins.
_base_ = ['./res18_aniso-meanhead_synthface.py']

model = dict(
    head=dict(loss=dict(_delete_=True, type='L1Loss', use_target_weight=True))
)
