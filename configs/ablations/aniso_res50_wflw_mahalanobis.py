# Ablation (Rayhan, Galata and Cootes, BMVC 2020, Table 4): the Mahalanobis
# distance sqrt((x - z)^T W (x - z)), an L1-like variant, in place of the
# paper's quadratic form.
_base_ = ['../aniso_res50_wflw.py']

model = dict(head=dict(loss=dict(distance='mahalanobis')))
