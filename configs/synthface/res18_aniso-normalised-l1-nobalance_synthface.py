# SynthFace: res18_aniso-normalised-l1_synthface.py without pose balancing
# (the default sampler; the mean-shape head keeps the per-bin mean).
_base_ = ['./res18_aniso-normalised-l1_synthface.py']

train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True)
)
