# SynthFace: the isotropic twin of res18_aniso-learned-l1_synthface.py: one
# learned scale per landmark (starting at b=3 px), so that learned weighting
# and learned anisotropy can be told apart.
_base_ = ['./res18_aniso-normalised-l1-nobalance_synthface.py']

model = dict(head=dict(loss=dict(scales='learned_isotropic')))
optim_wrapper = dict(constructor='LearnedScalesOptimWrapperConstructor')
