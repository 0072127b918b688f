import numpy as np
import pytest
from mmpose.datasets.datasets.utils import parse_pose_metainfo

from mmaniso.synthface.face_template import mean_face


@pytest.mark.parametrize(
    'name,num', [('wflw', 98), ('300w', 68), ('aflw', 19)]
)
def test_template_is_mirror_symmetric_under_mmpose_flip_pairs(name, num):
    meta = parse_pose_metainfo(
        dict(from_file=f'configs/_base_/datasets/{name}.py')
    )
    face = mean_face(num)
    assert face.shape == (num, 2)
    mirrored = face[meta['flip_indices']] * [-1, 1]
    np.testing.assert_allclose(mirrored, face, atol=1e-9)


def test_template_parts_are_where_a_face_has_them():
    face = mean_face(98)
    chin, nose_tip, pupils = face[16], face[54], face[96:98]
    brows, mouth = face[33:51], face[76:96]
    # Image y grows downwards: brows above eyes above nose above mouth.
    assert brows[:, 1].max() < pupils[:, 1].min() < nose_tip[1]
    assert nose_tip[1] < mouth[:, 1].min() and mouth[:, 1].max() < chin[1]
    assert pupils[0, 0] < 0 < pupils[1, 0]


def test_unknown_layout_is_refused():
    with pytest.raises(ValueError, match='no face template for 21'):
        mean_face(21)
