"""An in-memory top-down pose dataset for tests and benchmarks.

It serves ``get_data_info(index)`` as MMPose's top-down datasets do, from
annotations held in memory: no file is parsed and no image is loaded. The
pose sampler, the pose-balancing hook and the mean shape read nothing else.
"""

from typing import List, Optional, Sequence

import numpy as np
from mmengine.dataset import Compose


class InMemoryPoseDataset:
    """Data infos held in memory, one instance per sample.

    Args:
        data_list: One data info per sample, e.g. ``dict(keypoints=(1, K, 2),
            keypoints_visible=(1, K), bbox=(1, 4))`` as MMPose's top-down
            datasets give them; served as given, so a test can also serve
            malformed ones.
        pipeline: Transforms (instances), kept as ``pipeline.transforms``
            where code looks up a setting such as ``GetBBoxCenterScale``'s
            padding. They are not run.

    Example:
        >>> kpts = np.array([[[0.0, 0.0], [4.0, 2.0]]])
        >>> dataset = InMemoryPoseDataset.from_arrays(kpts)
        >>> len(dataset), dataset.get_data_info(0)['bbox'].tolist()
        (1, [[0.0, 0.0, 4.0, 2.0]])
    """

    def __init__(
        self,
        data_list: Sequence[dict],
        pipeline: Optional[Sequence] = None,
    ) -> None:
        self.data_list: List[dict] = list(data_list)
        self.pipeline = Compose(list(pipeline or []))

    @classmethod
    def from_arrays(
        cls,
        keypoints: np.ndarray,
        visible: Optional[np.ndarray] = None,
        bboxes: Optional[np.ndarray] = None,
        pipeline: Optional[Sequence] = None,
    ) -> 'InMemoryPoseDataset':
        """One sample per shape, with float32 arrays.

        Args:
            keypoints: Keypoints in image pixels, shape (N, K, 2).
            visible: Visibilities, shape (N, K). Defaults to all 1.
            bboxes: Boxes as (x0, y0, x1, y1), shape (N, 4). Defaults to
                each shape's extent over all its keypoints.
            pipeline: As for the constructor.

        Returns:
            InMemoryPoseDataset: Sample ``i`` holds ``keypoints[i]``.
        """
        keypoints = np.asarray(keypoints, np.float32)
        if keypoints.ndim != 3 or keypoints.shape[-1] != 2:
            raise ValueError(
                f'keypoints must have shape (N, K, 2), got {keypoints.shape}'
            )
        visible = (
            np.ones(keypoints.shape[:2], np.float32)
            if visible is None
            else np.asarray(visible, np.float32)
        )
        bboxes = (
            np.concatenate([keypoints.min(1), keypoints.max(1)], 1)
            if bboxes is None
            else np.asarray(bboxes, np.float32)
        )
        if visible.shape != keypoints.shape[:2]:
            raise ValueError(
                f'visible must have shape {keypoints.shape[:2]} for '
                f'keypoints of shape {keypoints.shape}, got {visible.shape}'
            )
        if bboxes.shape != (len(keypoints), 4):
            raise ValueError(
                f'bboxes must have shape ({len(keypoints)}, 4) as '
                f'(x0, y0, x1, y1), got {bboxes.shape}'
            )
        data_list = [
            dict(
                keypoints=keypoints[i : i + 1],
                keypoints_visible=visible[i : i + 1],
                bbox=bboxes[i : i + 1],
            )
            for i in range(len(keypoints))
        ]
        return cls(data_list, pipeline)

    def __len__(self) -> int:
        return len(self.data_list)

    def get_data_info(self, idx: int) -> dict:
        """The data info of sample ``idx`` (a shallow copy)."""
        return dict(self.data_list[idx])
