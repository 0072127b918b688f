"""Distributed start-up on machines without CUDA.

MMEngine's launchers call ``torch.cuda.set_device`` before creating the
process group and wrap the model with ``device_ids=[LOCAL_RANK]``; both fail
on a CPU-only host. Here the gloo group is created up front (MMEngine then
skips its own start-up) and the wrapper is told the model is on the CPU.
"""

import os

import torch
import torch.distributed as dist

# Environment variables each launcher sets, in the order
# (rank, world size, local rank).
_LAUNCHER_ENV = {
    'pytorch': ('RANK', 'WORLD_SIZE', 'LOCAL_RANK'),
    'slurm': ('SLURM_PROCID', 'SLURM_NTASKS', 'SLURM_LOCALID'),
    'mpi': (
        'OMPI_COMM_WORLD_RANK',
        'OMPI_COMM_WORLD_SIZE',
        'OMPI_COMM_WORLD_LOCAL_RANK',
    ),
}


def prepare_cpu_distributed(cfg, launcher: str) -> bool:
    """Starts a gloo process group when ``launcher`` is set and CUDA is not.

    Args:
        cfg (mmengine.Config): The run's config; its ``env_cfg.dist_cfg``
            backend becomes ``'gloo'`` and ``model_wrapper_cfg`` gets
            ``device_ids=None``.
        launcher: ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        Whether this function started the process group.
    """
    if launcher == 'none' or torch.cuda.is_available():
        return False
    if launcher not in _LAUNCHER_ENV:
        raise ValueError(
            f'unknown launcher {launcher!r}; expected one of '
            f'{sorted(_LAUNCHER_ENV)} or "none"'
        )
    rank_key, size_key, local_key = _LAUNCHER_ENV[launcher]
    missing = [k for k in (rank_key, size_key) if k not in os.environ]
    if missing:
        raise RuntimeError(
            f'--launcher {launcher} needs the environment variables '
            f'{missing}; start the run with tools/dist_train.sh (torchrun), '
            'srun or mpirun'
        )
    os.environ['RANK'] = os.environ[rank_key]
    os.environ['WORLD_SIZE'] = os.environ[size_key]
    os.environ['LOCAL_RANK'] = os.environ.get(local_key, '0')
    os.environ.setdefault('MASTER_ADDR', '127.0.0.1')
    os.environ.setdefault('MASTER_PORT', '29500')

    env_cfg = cfg.setdefault('env_cfg', {})
    env_cfg.setdefault('dist_cfg', {})['backend'] = 'gloo'
    wrapper = cfg.get('model_wrapper_cfg') or dict(
        type='MMDistributedDataParallel'
    )
    wrapper['device_ids'] = None
    wrapper.setdefault('broadcast_buffers', False)
    cfg.model_wrapper_cfg = wrapper
    if not dist.is_initialized():
        dist.init_process_group(backend='gloo')
    return True
