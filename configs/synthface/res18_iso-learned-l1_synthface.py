# SynthFace: the isotropic twin of res18_aniso-learned-l1_synthface.py: one
# learned scale per landmark (starting at b=3 px), so that learned weighting
# and learned anisotropy can be told apart.
_base_ = ['./res18_aniso-normalised-l1-nobalance_synthface.py']

model = dict(head=dict(loss=dict(scales='learned_isotropic')))
# Decay-free (the constructor's default) and 10x the network's learning
# rate: Adam moves a log-scale by about lr per step, so at lr=1e-3 the
# ~940 steps of this schedule could change a scale by at most a factor of
# about e; at 1e-2 the scales settle within the first few hundred steps.
optim_wrapper = dict(
    constructor='LearnedScalesOptimWrapperConstructor',
    paramwise_cfg=dict(
        custom_keys={'.scale_params': dict(lr_mult=10.0)}
    ),
)
