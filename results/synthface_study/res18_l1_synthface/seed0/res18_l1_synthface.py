auto_scale_lr = dict(base_batch_size=32)
backend_args = dict(backend='local')
codec = dict(
    _scope_='mmpose', input_size=(
        64,
        64,
    ), type='RegressionLabel')
custom_hooks = [
    dict(_scope_='mmpose', type='SyncBuffersHook'),
]
custom_imports = dict(
    allow_failed_imports=False, imports=[
        'mmaniso',
    ])
data_mode = 'topdown'
data_root = 'data/synthface/'
dataset_type = 'WFLWDataset'
default_hooks = dict(
    checkpoint=dict(
        _scope_='mmpose',
        interval=15,
        rule='less',
        save_best=None,
        type='CheckpointHook'),
    logger=dict(_scope_='mmpose', interval=20, type='LoggerHook'),
    param_scheduler=dict(_scope_='mmpose', type='ParamSchedulerHook'),
    sampler_seed=dict(_scope_='mmpose', type='DistSamplerSeedHook'),
    timer=dict(_scope_='mmpose', type='IterTimerHook'),
    visualization=dict(
        _scope_='mmpose', enable=False, type='PoseVisualizationHook'))
default_scope = 'mmpose'
env_cfg = dict(
    cudnn_benchmark=False,
    dist_cfg=dict(backend='nccl'),
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0))
launcher = 'none'
load_from = 'work_dirs/study_tables/res18_l1_synthface/seed0/epoch_15.pth'
log_level = 'INFO'
log_processor = dict(
    _scope_='mmpose',
    by_epoch=True,
    num_digits=6,
    type='LogProcessor',
    window_size=50)
max_epochs = 15
model = dict(
    _scope_='mmpose',
    backbone=dict(base_channels=32, depth=18, init_cfg=None, type='ResNet'),
    data_preprocessor=dict(
        bgr_to_rgb=True,
        mean=[
            123.675,
            116.28,
            103.53,
        ],
        std=[
            58.395,
            57.12,
            57.375,
        ],
        type='PoseDataPreprocessor'),
    head=dict(
        decoder=dict(input_size=(
            64,
            64,
        ), type='RegressionLabel'),
        in_channels=256,
        loss=dict(type='L1Loss', use_target_weight=True),
        num_joints=98,
        type='RegressionHead'),
    neck=dict(type='GlobalAveragePooling'),
    test_cfg=dict(flip_test=True, shift_coords=True),
    train_cfg=dict(),
    type='TopdownPoseEstimator')
optim_wrapper = dict(optimizer=dict(_scope_='mmpose', lr=0.001, type='Adam'))
param_scheduler = [
    dict(begin=0, by_epoch=False, end=100, start_factor=0.01, type='LinearLR'),
    dict(
        begin=0,
        by_epoch=True,
        end=15,
        gamma=0.1,
        milestones=[
            11,
            14,
        ],
        type='MultiStepLR'),
]
resume = False
test_cfg = dict()
test_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _scope_='mmpose',
        ann_file='annotations/face_landmarks_wflw_test_clean.json',
        data_mode='topdown',
        data_prefix=dict(img='images/'),
        data_root='data/synthface/',
        pipeline=[
            dict(type='LoadImage'),
            dict(type='GetBBoxCenterScale'),
            dict(input_size=(
                64,
                64,
            ), type='TopdownAffine'),
            dict(type='PackPoseInputs'),
        ],
        test_mode=True,
        type='WFLWDataset'),
    drop_last=False,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(
        _scope_='mmpose', round_up=False, shuffle=False,
        type='DefaultSampler'))
test_evaluator = dict(
    ann_file='data/synthface/annotations/face_landmarks_wflw_test_clean.json',
    norm='inter_ocular',
    overwrite=True,
    type='FaceLandmarkMetric')
train_cfg = dict(by_epoch=True, max_epochs=15, val_interval=1)
train_dataloader = dict(
    batch_size=32,
    dataset=dict(
        _scope_='mmpose',
        ann_file='annotations/face_landmarks_wflw_train.json',
        data_mode='topdown',
        data_prefix=dict(img='images/'),
        data_root='data/synthface/',
        pipeline=[
            dict(type='LoadImage'),
            dict(type='GetBBoxCenterScale'),
            dict(direction='horizontal', type='RandomFlip'),
            dict(
                rotate_factor=15,
                scale_factor=[
                    0.9,
                    1.1,
                ],
                type='RandomBBoxTransform'),
            dict(input_size=(
                64,
                64,
            ), type='TopdownAffine'),
            dict(
                encoder=dict(input_size=(
                    64,
                    64,
                ), type='RegressionLabel'),
                type='GenerateTarget'),
            dict(type='PackPoseInputs'),
        ],
        type='WFLWDataset'),
    num_workers=1,
    persistent_workers=True,
    sampler=dict(_scope_='mmpose', shuffle=True, type='DefaultSampler'))
train_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(direction='horizontal', type='RandomFlip'),
    dict(
        rotate_factor=15,
        scale_factor=[
            0.9,
            1.1,
        ],
        type='RandomBBoxTransform'),
    dict(input_size=(
        64,
        64,
    ), type='TopdownAffine'),
    dict(
        encoder=dict(input_size=(
            64,
            64,
        ), type='RegressionLabel'),
        type='GenerateTarget'),
    dict(type='PackPoseInputs'),
]
val_cfg = dict()
val_dataloader = dict(
    batch_size=64,
    dataset=dict(
        _scope_='mmpose',
        ann_file='annotations/face_landmarks_wflw_val_clean.json',
        data_mode='topdown',
        data_prefix=dict(img='images/'),
        data_root='data/synthface/',
        pipeline=[
            dict(type='LoadImage'),
            dict(type='GetBBoxCenterScale'),
            dict(input_size=(
                64,
                64,
            ), type='TopdownAffine'),
            dict(type='PackPoseInputs'),
        ],
        test_mode=True,
        type='WFLWDataset'),
    drop_last=False,
    num_workers=1,
    persistent_workers=True,
    sampler=dict(
        _scope_='mmpose', round_up=False, shuffle=False,
        type='DefaultSampler'))
val_evaluator = dict(norm='inter_ocular', type='FaceLandmarkMetric')
val_pipeline = [
    dict(type='LoadImage'),
    dict(type='GetBBoxCenterScale'),
    dict(input_size=(
        64,
        64,
    ), type='TopdownAffine'),
    dict(type='PackPoseInputs'),
]
vis_backends = [
    dict(_scope_='mmpose', type='LocalVisBackend'),
]
visualizer = dict(
    _scope_='mmpose',
    name='visualizer',
    type='PoseLocalVisualizer',
    vis_backends=[
        dict(type='LocalVisBackend'),
    ])
work_dir = 'work_dirs/study_tables/res18_l1_synthface/seed0'
