"""SynthFace: rendered faces whose annotation noise runs along the curves.

The embedded default data of mmaniso: it needs no download and no GPU, and
its labels carry the kind of error the anisotropic loss is built for. Each
face has exact *clean* landmarks (``keypoints_clean``) and *annotated* ones
(``keypoints``, what training reads), made from the clean ones by
:func:`annotation_noise` under one of :data:`NOISE_MODELS`. The model and
its sigmas, fractions of the face's inter-ocular distance ``d`` (the
outer-eye-corner distance of the mean face, seen frontally at the face's
scale in the image, stored as ``interocular``), are recorded in the JSON
``info``. Each annotation also stores ``yaw``,
``pitch`` and ``roll`` and WFLW's six ``attributes`` flags.

Not imported by ``import mmaniso``: the plugin registers its components
without loading OpenCV's renderer. The parts:

- :mod:`.noise`: the annotation models (numpy);
- :mod:`.face_template`, :mod:`.face_template_3d`: the 2-D mean face and
  its 3-D, deformable, posable version;
- :mod:`.renderer`: poses and OpenCV drawing of one face;
- :mod:`.writer`: MMPose's JSON and the images, a preview grid, a summary.
"""

from .noise import (
    NOISE_MODELS,
    SIGMA_C,
    SIGMA_N,
    SIGMA_T,
    annotation_noise,
    describe_noise,
    point_at_arc_length,
)
from .renderer import Sample, render_face, sample_pose
from .writer import (
    ATTRIBUTES,
    SYNTHFACE_LAYOUTS,
    preview_grid,
    summarise,
    synth_sample,
    write_synthface,
)

__all__ = [
    'ATTRIBUTES',
    'NOISE_MODELS',
    'SIGMA_C',
    'SIGMA_N',
    'SIGMA_T',
    'SYNTHFACE_LAYOUTS',
    'Sample',
    'annotation_noise',
    'describe_noise',
    'point_at_arc_length',
    'preview_grid',
    'render_face',
    'sample_pose',
    'summarise',
    'synth_sample',
    'write_synthface',
]
