"""Config set-up shared by ``tools/train.py`` and ``tools/test.py``."""

import os
import os.path as osp
from typing import Optional, Sequence

from .dist import prepare_cpu_distributed


def setup_run_config(
    config: str,
    cfg_options: Optional[dict],
    work_dir: Optional[str],
    launcher: str,
    check_splits: Sequence[str] = (),
):
    """Loads a config and readies it for a runner, as MMPose's tools do.

    Args:
        config: Path of the config file.
        cfg_options: ``--cfg-options`` overrides.
        work_dir: ``--work-dir``; else the config's, else
            ``work_dirs/<config name>``.
        launcher: ``--launcher``; on a host without CUDA a gloo process
            group is started here (see :mod:`mmaniso.utils.dist`).
        check_splits: Dataloaders whose data must exist before the model is
            built (:func:`mmaniso.datasets.check_data_files`).

    Returns:
        mmengine.Config: the config to give ``Runner.from_cfg``.
    """
    from mmengine.config import Config

    from mmaniso.datasets import check_data_files

    if not osp.isfile(config):
        raise FileNotFoundError(f'config file not found: {config}')
    cfg = Config.fromfile(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    cfg.launcher = launcher
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join(
            './work_dirs', osp.splitext(osp.basename(config))[0]
        )
    if check_splits:
        check_data_files(cfg, check_splits)
    prepare_cpu_distributed(cfg, launcher)
    return cfg


def set_local_rank(local_rank: Optional[int]) -> None:
    """Exports ``--local-rank`` (torch.distributed.launch) as LOCAL_RANK."""
    if local_rank is not None and 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)
