# Baseline for the loss comparison of Rayhan, Galata and Cootes (BMVC 2020,
# Table 6) on WFLW:
# MMPose's stock SoftWingLoss in place of AnisotropicLoss, as MMPose's recipes
# use it: its omega/epsilon are meant in pixels but MMPose regresses
# coordinates in [0, 1], so every error stays in the linear branch and
# SoftWing equals the summed L1 exactly (measured ratio 1.000000). The
# true one is res50_softwing-true_wflw.py. Everything
# else as configs/aniso_res50_wflw.py (pose-balanced sampler, mean-shape
# head, schedule), so only the loss differs.
_base_ = ['../aniso_res50_wflw.py']

model = dict(
    head=dict(
        loss=dict(_delete_=True, type='SoftWingLoss', use_target_weight=True)
    )
)
