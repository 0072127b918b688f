# Ablation (Rayhan, Galata and Cootes, BMVC 2020, Table 4): direct
# prediction of the coordinates with MMPose's RegressionHead instead of the
# displacement from the mean shape. Loss and pose balancing unchanged.
_base_ = ['../aniso_res50_wflw.py']

# MMPose's RegressionHead does not pass its codec's size to the loss.
model = dict(
    head=dict(type='RegressionHead', loss=dict(input_size=(256, 256)))
)
