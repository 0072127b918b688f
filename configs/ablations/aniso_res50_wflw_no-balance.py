# Ablation (Rayhan, Galata and Cootes, BMVC 2020, Table 4): no pose
# balancing. MMPose's DefaultSampler visits every training face each epoch;
# the mean-shape head and the loss are unchanged (PoseBalancingHook still
# fills the mean of the per-bin mean shapes, from 9 bins it computes itself).
_base_ = ['../aniso_res50_wflw.py']

train_dataloader = dict(
    sampler=dict(_delete_=True, type='DefaultSampler', shuffle=True)
)
