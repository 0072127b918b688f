# SynthFace: res18_aniso-normalised-l1-nobalance_synthface.py with scales
# predicted per image: the head's second linear layer gives each landmark a
# scale along and one across the curve (starting at a=5, b=3 px), trained
# by the Laplace-like likelihood; at test time an ellipse per landmark.
_base_ = ['./res18_aniso-normalised-l1-nobalance_synthface.py']

model = dict(
    head=dict(predict_scales='anisotropic', loss=dict(scales='predicted'))
)
