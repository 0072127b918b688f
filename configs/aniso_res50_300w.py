# Reproduces the ResNet50 result of Rayhan, Galata and Cootes (BMVC 2020) on
# 300W: NME 2.91 full, 2.35 common, 4.05 challenging (inter-ocular).
#
# The WFLW set-up (configs/aniso_res50_wflw.py: MMPose's ResNet50 regression
# recipe, AnisotropicLoss a=5 b=3, PoseBalancedSampler K=9, mean-shape head)
# on 300W's 68 points (MMPose has no 300W regression recipe), 210 epochs.
#
# tools/test.py evaluates the 689 validation faces (full, common,
# challenging). The private 600-face test set:
#   F=annotations/face_landmarks_300w_test.json
#   python tools/test.py configs/aniso_res50_300w.py CKPT --cfg-options \
#     test_dataloader.dataset.ann_file=$F test_evaluator.ann_file=data/300w/$F
_base_ = ['./aniso_res50_wflw.py']

point_types = '300w'
dataset_type = 'Face300WDataset'
data_root = 'data/300w/'
model = dict(head=dict(num_joints=68, loss=dict(point_types=point_types)))

train_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/face_landmarks_300w_train.json',
    )
)
val_dataloader = dict(
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/face_landmarks_300w_valid.json',
    )
)
test_dataloader = val_dataloader
val_evaluator = dict(
    ann_file=data_root + 'annotations/face_landmarks_300w_valid.json'
)
test_evaluator = val_evaluator
