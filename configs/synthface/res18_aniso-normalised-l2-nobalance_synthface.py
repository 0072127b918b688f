# SynthFace ablation: the paper's squared cost r^T W r with the normalised
# W~ = n n^T + (b/a)^2 t t^T on curves and I at corners, on the mean-shape
# head without pose balancing. Beside res18_aniso-meanhead_synthface.py (the
# paper's W, same cost, head and sampler) it separates the weighting from
# the cost shape; beside res18_l2-meanhead_synthface.py it is the
# anisotropic form of its isotropic twin.
_base_ = ['./res18_aniso-meanhead_synthface.py']

model = dict(head=dict(loss=dict(weighting='normalised', distance='squared')))
