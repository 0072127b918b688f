# Reproduces the ResNet50 result of Rayhan, Galata and Cootes (BMVC 2020) on
# AFLW-19: NME 1.30 full (4,386 faces), 1.27 frontal, normalised by the
# face box sqrt(w*h) (docs/data_preparation.md names the box).
#
# The WFLW set-up (configs/aniso_res50_wflw.py) on AFLW's 19 points: MMPose
# has no AFLW regression recipe. The schedule keeps MMPose's 210 epochs of
# 20,000 faces at batch 512 (40 iterations each) as 8,400 iterations.
_base_ = ['./aniso_res50_wflw.py']

point_types = 'aflw'
dataset_type = 'AFLWDataset'
data_root = 'data/aflw/'
model = dict(head=dict(num_joints=19, loss=dict(point_types=point_types)))

max_iters = 8400
val_interval = 840
train_cfg = dict(max_iters=max_iters, val_interval=val_interval)
param_scheduler = [
    dict(
        type='LinearLR', begin=0, end=500, start_factor=0.001, by_epoch=False
    ),
    dict(
        type='MultiStepLR',
        begin=0,
        end=max_iters,
        milestones=[6800, 8000],
        gamma=0.1,
        by_epoch=False,
    ),
]
default_hooks = dict(checkpoint=dict(interval=val_interval))

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/face_landmarks_aflw_train.json',
    )
)
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/face_landmarks_aflw_test.json',
    )
)
test_dataloader = val_dataloader
# Full and frontal in one run: the converter flags frontal faces.
val_evaluator = dict(
    norm='bbox',
    ann_file=data_root + 'annotations/face_landmarks_aflw_test.json',
)
test_evaluator = val_evaluator
