# Reproduces the ResNet50 result of Rayhan, Galata and Cootes (BMVC 2020) on
# AFLW-19: NME 1.30 full (4,386 faces), 1.27 frontal, normalised by the
# face box sqrt(w*h) (docs/data_preparation.md names the box).
#
# The WFLW set-up (configs/aniso_res50_wflw.py) on AFLW's 19 points (MMPose
# has no AFLW regression recipe), 210 epochs.
_base_ = ['./aniso_res50_wflw.py']

point_types = 'aflw'
dataset_type = 'AFLWDataset'
data_root = 'data/aflw/'
model = dict(head=dict(num_joints=19, loss=dict(point_types=point_types)))

# Same shape as aniso_res50_300w.py: each dataset's own type and files.
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
