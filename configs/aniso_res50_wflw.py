# Reproduces the ResNet50 direct-regression result of Rayhan, Galata and
# Cootes, "Not all points are created equal" (BMVC 2020) on WFLW: NME 4.01,
# FR@0.1 2.34, AUC@0.1 0.5895 (inter-ocular, full test set of 2,500).
#
# MMPose's ResNet50 regression recipe (ImageNet-pretrained ResNet50,
# 256x256, Adam 5e-4 at batch 8x64, flip/scale/rotation augmentation, flip
# test) with the paper's three ingredients:
#   - AnisotropicLoss: a=5, b=3 in pixels of the 256x256 crop, WFLW curves;
#   - PoseBalancedSampler: 9 pose bins, each undersampled to the smallest
#     one, drawn afresh every epoch;
#   - MeanShapeRegressionHead: predicts dx from the mean of the per-bin mean
#     shapes (filled from the training annotations by PoseBalancingHook).
# Schedule: an undersampled epoch holds only 9 x (smallest bin) faces (see
# docs/pose_balancing.md), so the schedule counts iterations: 3,150 = the
# 210 MMPose epochs of 7,500 faces at batch 512, decays at the same points.
_base_ = [
    'mmpose::face_2d_keypoint/topdown_regression/wflw/'
    'td-reg_res50_8xb64-210e_wflw-256x256.py'
]
custom_imports = dict(imports=['mmaniso'], allow_failed_imports=False)

point_types = 'wflw'
input_size = (256, 256)
model = dict(
    head=dict(
        type='MeanShapeRegressionHead',
        loss=dict(
            _delete_=True,
            type='AnisotropicLoss',
            point_types=point_types,
            a=5.0,
            b=3.0,
            use_target_weight=True,
            input_size=input_size,
        ),
    )
)

train_dataloader = dict(
    sampler=dict(type='PoseBalancedSampler', num_bins=9, mode='undersample')
)
custom_hooks = [dict(type='SyncBuffersHook'), dict(type='PoseBalancingHook')]

max_iters = 3150
val_interval = 315
train_cfg = dict(
    _delete_=True,
    type='IterBasedTrainLoop',
    max_iters=max_iters,
    val_interval=val_interval,
)
param_scheduler = [
    dict(
        type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False
    ),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        milestones=[2550, 3000],
        gamma=0.1,
        by_epoch=False,
    ),
]
default_hooks = dict(
    checkpoint=dict(
        by_epoch=False,
        interval=val_interval,
        save_best='NME',
        rule='less',
        max_keep_ckpts=2,
    )
)
log_processor = dict(by_epoch=False)

data_root = 'data/wflw/'
# NME/FR/AUC on the full test set and on its six attribute subsets, whose
# flags tools/dataset_converters/convert_wflw.py keeps in the annotations.
val_evaluator = dict(
    _delete_=True,
    type='FaceLandmarkMetric',
    norm='inter_ocular',
    ann_file=data_root + 'annotations/face_landmarks_wflw_test.json',
)
test_evaluator = val_evaluator
