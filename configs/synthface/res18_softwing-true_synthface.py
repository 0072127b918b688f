# SynthFace study baseline, true SoftWing: MMPose's SoftWingLoss with its
# published omega1=2, omega2=20, epsilon=0.5 taken as pixels of a 256 x 256
# crop and converted to the normalised frame MMPose regresses in (/256), so
# the branch points sit where they would on the paper's crop, relative to
# the face. The stock res18_softwing_synthface.py passes them unconverted
# and trains L1.
_base_ = ['./res18_softwing_synthface.py']

crop = 256
model = dict(
    head=dict(
        loss=dict(omega1=2.0 / crop, omega2=20.0 / crop, epsilon=0.5 / crop)
    )
)
