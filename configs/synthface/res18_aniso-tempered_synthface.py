# SynthFace: the full paper set-up with tempered pose balancing: each
# dataset-long epoch gives bin b a share of n_b^0.5 (between the paper's
# equal shares, alpha = 0, and no balancing, alpha = 1).
_base_ = ['./res18_aniso_synthface.py']

train_dataloader = dict(
    sampler=dict(
        _delete_=True,
        type='PoseBalancedSampler',
        num_bins=9,
        temperature=0.5,
        draws_per_epoch=1,
    )
)
