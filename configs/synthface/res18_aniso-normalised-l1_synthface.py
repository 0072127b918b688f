# SynthFace: the normalised anisotropic L1, beside its isotropic twin L1
# (res18_l1_synthface.py): m = sqrt(r^T W~ r) with W~ = n n^T + (b/a)^2 t t^T
# on curves and I at corners, so across-curve and corner errors weigh the
# same and only sliding along a curve is cheaper. With the paper's pose
# balancing and mean-shape head, as res18_aniso_synthface.py.
_base_ = ['./res18_aniso_synthface.py']

model = dict(
    head=dict(loss=dict(weighting='normalised', distance='mahalanobis'))
)
