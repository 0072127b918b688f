# Baseline, true SoftWing (Lin et al., ICCV 2021) on WFLW: MMPose's
# SoftWingLoss with its published parameters, omega1=2, omega2=20,
# epsilon=0.5 pixels of the 256 x 256 crop, converted to the normalised
# [0, 1] frame MMPose regresses in (divided by 256). MMPose's stock recipe
# (res50_softwing_wflw.py) passes them unconverted, so every error stays in
# SoftWing's linear branch and the loss is L1. Everything else as
# configs/aniso_res50_wflw.py, so only the loss differs.
_base_ = ['../aniso_res50_wflw.py']

# The same loss block as configs/synthface/res18_softwing-true-meanhead_
# synthface.py, kept apart: the study's records pin that file's text.
crop = 256
model = dict(
    head=dict(
        loss=dict(
            _delete_=True,
            type='SoftWingLoss',
            omega1=2.0 / crop,
            omega2=20.0 / crop,
            epsilon=0.5 / crop,
            use_target_weight=True,
        )
    )
)
