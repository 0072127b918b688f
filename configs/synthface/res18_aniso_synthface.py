# SynthFace with the paper's three ingredients on the baseline's backbone,
# input and schedule (res18_softwing_synthface.py): AnisotropicLoss (a=5,
# b=3 pixels of the 64x64 crop), PoseBalancedSampler with 9 pose bins and
# the mean-shape head. Only these lines differ from the baseline.
_base_ = ['./res18_softwing_synthface.py']

model = dict(
    head=dict(
        type='MeanShapeRegressionHead',
        loss=dict(
            _delete_=True,
            type='AnisotropicLoss',
            point_types='wflw',
            a=5.0,
            b=3.0,
            use_target_weight=True,
            # input_size: MeanShapeRegressionHead passes its codec's.
        ),
    )
)
# Fresh balanced draws chained into epochs as long as the baseline's.
train_dataloader = dict(
    sampler=dict(
        type='PoseBalancedSampler', num_bins=9, draws_per_epoch='auto'
    )
)
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='PoseBalancingHook')]
