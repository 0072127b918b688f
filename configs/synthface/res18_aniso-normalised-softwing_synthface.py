# SynthFace: the normalised anisotropic SoftWing, beside its isotropic twin
# (res18_softwing-true_synthface.py): SoftWing of m = sqrt(r^T W~ r), W~ as
# in res18_aniso-normalised-l1_synthface.py. SoftWing's published 2/20/0.5
# pixels of a 256 crop are scaled to this 64 x 64 crop (x 64/256), as the
# true SoftWing baseline's are. With pose balancing and the mean-shape head.
_base_ = ['./res18_aniso_synthface.py']

scale = 64 / 256
model = dict(
    head=dict(
        loss=dict(
            weighting='normalised',
            distance='softwing',
            wing_params=dict(
                omega1=2.0 * scale, omega2=20.0 * scale, epsilon=0.5 * scale
            ),
        )
    )
)
