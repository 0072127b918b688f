# Baseline for the loss comparison of Rayhan, Galata and Cootes (BMVC 2020,
# Table 6) on WFLW:
# MMPose's L1Loss in place of AnisotropicLoss, everything
# else as configs/aniso_res50_wflw.py (pose-balanced sampler, mean-shape
# head, schedule), so only the loss differs.
_base_ = ['../aniso_res50_wflw.py']

model = dict(
    head=dict(loss=dict(_delete_=True, type='L1Loss', use_target_weight=True))
)
