# SynthFace: the normalised anisotropic L1 without balancing
# (res18_aniso-normalised-l1-nobalance_synthface.py) with its scales
# learned: per landmark a scale along and one across the curve, starting at
# a=5 and b=3 px, trained by the Laplace-like likelihood
# m + log(2 pi a_i b_i). The scales are never weight-decayed.
_base_ = ['./res18_aniso-normalised-l1-nobalance_synthface.py']

model = dict(head=dict(loss=dict(scales='learned')))
optim_wrapper = dict(constructor='LearnedScalesOptimWrapperConstructor')
