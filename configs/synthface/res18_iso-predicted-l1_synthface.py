# SynthFace: the isotropic twin of res18_aniso-predicted-l1_synthface.py:
# one predicted scale per image and landmark (starting at b=3 px).
_base_ = ['./res18_aniso-normalised-l1-nobalance_synthface.py']

model = dict(
    head=dict(predict_scales='isotropic', loss=dict(scales='predicted'))
)
