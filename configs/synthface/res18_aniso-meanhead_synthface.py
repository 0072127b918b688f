# SynthFace ablation, the paper's loss + mean-shape head, no pose balancing:
# the default sampler; PoseBalancingHook still fills the mean of the per-bin
# mean shapes from 9 bins of its own.
_base_ = ['./res18_aniso_synthface.py']

train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True)
)
