# SynthFace ablation: the true SoftWing (res18_softwing-true_synthface.py,
# 2/20/0.5 px of a 256 crop in the normalised frame) on the mean-shape head
# without pose balancing, the isotropic twin of
# res18_aniso-normalised-softwing-nobalance_synthface.py.
_base_ = ['./res18_aniso-meanhead_synthface.py']

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
