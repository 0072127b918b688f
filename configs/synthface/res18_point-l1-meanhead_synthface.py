# SynthFace: the exact isotropic twin of
# res18_aniso-normalised-l1-nobalance_synthface.py: the same loss with
# a = b, so W = I everywhere and the cost is each point's error length in
# pixels (an L1 of point lengths, where MMPose's L1Loss adds |dx| + |dy|).
# It differs from the anisotropic row in the along-curve discount only.
_base_ = ['./res18_aniso-normalised-l1-nobalance_synthface.py']

model = dict(head=dict(loss=dict(a=3.0, b=3.0)))
