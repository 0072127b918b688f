"""Config set-up shared by ``tools/train.py`` and ``tools/test.py``."""

import glob
import os
import os.path as osp
import re
import time
import warnings
from typing import List, Optional, Sequence, Tuple

from .dist import _LAUNCHER_ENV, prepare_cpu_distributed

# MMEngine's file backends take checkpoints by URL or by scheme
# (https://, s3://, open-mmlab://, torchvision://, ...).
_SCHEME = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')
LAST_CHECKPOINT = 'last_checkpoint'  # MMEngine CheckpointHook's pointer file


# Notices of MMPose's dependencies that say nothing to a user of these
# tools (the tests filter the same in pyproject.toml): setuptools' notice
# that MMEngine imports pkg_resources, MMPose's notice that it found a
# dataset's metainfo file inside its own package, and mmcv-lite's notice
# that it has no compiled ops.
KNOWN_THIRD_PARTY_WARNINGS = (
    'pkg_resources is deprecated',
    'The metainfo config file',
    'Fail to import ``MultiScaleDeformableAttention``',
)


def quiet_known_warnings() -> None:
    """Filters :data:`KNOWN_THIRD_PARTY_WARNINGS` in this process (and the
    data-loading workers it forks); every other warning still shows."""
    for message in KNOWN_THIRD_PARTY_WARNINGS:
        warnings.filterwarnings(
            'ignore', message=re.escape(message), category=UserWarning
        )


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

    quiet_known_warnings()
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
        # A face-crop cache must still match its source and the pipeline.
        from mmaniso.datasets.crop_cache import check_crop_caches

        check_crop_caches(cfg, check_splits)
    prepare_cpu_distributed(cfg, launcher)
    return cfg


def set_local_rank(local_rank: Optional[int]) -> None:
    """Exports ``--local-rank`` (torch.distributed.launch) as LOCAL_RANK."""
    if local_rank is not None and 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(local_rank)


def has_url_scheme(path: str) -> bool:
    """Whether ``path`` names a checkpoint by ``scheme://`` (a URL, or an
    MMEngine prefix such as ``open-mmlab://``) rather than a local file."""
    return bool(_SCHEME.match(str(path)))


def refuse_existing_files(
    outputs: Sequence[Tuple[str, Optional[str]]], overwrite: bool
) -> None:
    """Stops before anything is built if an output file already exists.

    Args:
        outputs: ``(option, path)`` pairs such as ``('--out', 'a.pkl')``;
            a ``None`` path is skipped.
        overwrite: ``--overwrite``: existing files may be replaced.

    Raises:
        SystemExit: Naming each existing file, its option and the fix.
    """
    if overwrite:
        return
    existing = [
        f'{option} {path}'
        for option, path in outputs
        if path is not None and osp.exists(path)
    ]
    if existing:
        one = len(existing) == 1
        raise SystemExit(
            f'{" and ".join(existing)} already exist{"s" if one else ""} '
            'and would be overwritten; pass --overwrite to replace '
            f'{"it" if one else "them"}, or name another file'
        )


def find_checkpoints(work_dir: str) -> List[str]:
    """Names of the checkpoints (``*.pth``) and of MMEngine's
    ``last_checkpoint`` pointer directly in ``work_dir``, sorted."""
    if not osp.isdir(work_dir):
        return []
    names = [osp.basename(p) for p in glob.glob(osp.join(work_dir, '*.pth'))]
    if osp.isfile(osp.join(work_dir, LAST_CHECKPOINT)):
        names.append(LAST_CHECKPOINT)
    return sorted(names)


def launch_rank(launcher: str) -> int:
    """This process's global rank before any process group exists."""
    if launcher not in _LAUNCHER_ENV:
        return 0
    rank_key = _LAUNCHER_ENV[launcher][0]
    return int(os.environ.get(rank_key, os.environ.get('RANK', '0')))


def guard_work_dir(
    cfg, overwrite: bool, launcher: str = 'none'
) -> Optional[str]:
    """Keeps a fresh training run from mixing its checkpoints with those
    an earlier run left in the same work dir.

    A new run replaces ``epoch_1.pth`` but leaves the old ``epoch_2.pth``
    beside it, and ``--resume`` would later pick up either. So, unless the
    config resumes (``--resume``), checkpoints in ``cfg.work_dir`` stop the
    run; with ``overwrite`` they are moved (never deleted) into
    ``<work_dir>/previous_<timestamp>/`` by rank 0. Call it before the
    Runner is built.

    Args:
        cfg (mmengine.Config): The run's config, after the command line.
        overwrite: ``--overwrite``: move the old checkpoints aside.
        launcher: ``--launcher``, to tell rank 0.

    Returns:
        The folder the checkpoints were moved to, or None.

    Raises:
        SystemExit: When checkpoints are found without ``overwrite``, or
            ``overwrite`` is combined with resuming or with a
            ``load_from`` among the checkpoints it would move.
    """
    work_dir = cfg.work_dir
    if cfg.get('resume'):
        if overwrite:
            raise SystemExit(
                '--overwrite starts a fresh run and moves the checkpoints '
                f'of {work_dir} aside; it cannot be combined with --resume '
                '(resume=True), which continues them'
            )
        return None  # continuing the run: its checkpoints belong to it
    found = find_checkpoints(work_dir)
    if not found:
        return None
    shown = ', '.join(found[:6]) + (
        f' and {len(found) - 6} more' if len(found) > 6 else ''
    )
    if not overwrite:
        raise SystemExit(
            f'work dir {work_dir} already holds checkpoints of an earlier '
            f'run ({shown}); training afresh there would mix them with the '
            'new ones. Continue that run with --resume, give another '
            '--work-dir, or pass --overwrite to move them into '
            f'{work_dir}/previous_<timestamp>/'
        )
    load_from = cfg.get('load_from')
    if (
        load_from
        and not has_url_scheme(load_from)
        and osp.abspath(osp.dirname(load_from)) == osp.abspath(work_dir)
        and osp.basename(load_from) in found
    ):
        raise SystemExit(
            f'load_from={load_from} is one of the checkpoints --overwrite '
            f'would move out of {work_dir}; copy it elsewhere first and '
            'point load_from there'
        )
    if launch_rank(cfg.get('launcher', launcher)) != 0:
        return None  # rank 0 moves them; no two processes race for it
    return _move_aside(work_dir, found)


def _move_aside(work_dir: str, names: Sequence[str]) -> str:
    stamp = time.strftime('%Y%m%d_%H%M%S')
    target = osp.join(work_dir, f'previous_{stamp}')
    suffix = 1
    while osp.exists(target):  # two runs within a second
        target = osp.join(work_dir, f'previous_{stamp}_{suffix}')
        suffix += 1
    os.makedirs(target)
    for name in names:
        os.replace(osp.join(work_dir, name), osp.join(target, name))
    # last_checkpoint holds the path of the latest checkpoint: point the
    # moved copy at where that checkpoint went, so it stays usable.
    pointer = osp.join(target, LAST_CHECKPOINT)
    if osp.isfile(pointer):
        with open(pointer) as f:
            latest = f.read().strip()
        if (
            osp.abspath(osp.dirname(latest)) == osp.abspath(work_dir)
            and osp.basename(latest) in names
        ):
            with open(pointer, 'w') as f:
                f.write(osp.join(target, osp.basename(latest)))
    print(
        f'--overwrite: moved the earlier checkpoints of {work_dir} '
        f'({", ".join(names)}) into {target}',
        flush=True,
    )
    return target


# Work dirs this process holds, by real path: open descriptors whose locks
# last as long as the process (the system drops them when it ends).
_held_locks: dict = {}


def lock_work_dir(work_dir: str, launcher: str = 'none') -> Optional[int]:
    """Claims ``work_dir`` for this process, so that no second training or
    test runs there at once (a re-run's ``--overwrite`` would move files
    while the first still writes them).

    Takes an exclusive ``fcntl.flock`` on the work dir itself (no file is
    added to it), held for the life of the process and dropped by the
    system when the process ends, however it ends. Only rank 0 of a
    distributed run takes it; a process may claim a work dir it already
    holds again. Call it before anything is written or moved there.

    Args:
        work_dir: The run's work dir; made if missing.
        launcher: ``--launcher``, to tell rank 0.

    Returns:
        The descriptor holding the lock, or None where none is taken
        (ranks other than 0; systems or file systems without ``flock``).

    Raises:
        SystemExit: Another process holds the work dir; the message names
            the dir and, where the system tells (``/proc/locks``), that
            process's id.
    """
    try:
        import fcntl
    except ImportError:  # not a POSIX system
        return None
    if launch_rank(launcher) != 0:
        return None
    os.makedirs(work_dir, exist_ok=True)
    key = osp.realpath(work_dir)
    if key in _held_locks:
        return _held_locks[key]
    fd = os.open(work_dir, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _lock_holder(fd)
        os.close(fd)
        who = f'PID {holder}' if holder else 'another process'
        raise SystemExit(
            f'work dir {work_dir} is in use by another run ({who} holds '
            'its lock); a second run there would mix its files with that '
            "run's. Wait for it to end (or stop it), or give another "
            '--work-dir'
        ) from None
    except OSError:  # a file system without flock (some NFS mounts)
        os.close(fd)
        return None
    _held_locks[key] = fd
    return fd


def _lock_holder(fd: int) -> Optional[int]:
    """The process holding a flock on ``fd``'s file, from Linux's
    ``/proc/locks``; None where it cannot be told."""
    st = os.fstat(fd)
    try:
        with open('/proc/locks') as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        # "1: FLOCK  ADVISORY  WRITE 9998 fe:00:2147634 0 EOF"
        if len(fields) < 6 or fields[1] != 'FLOCK' or fields[3] != 'WRITE':
            continue
        try:
            major, minor, inode = fields[5].split(':')
            same = (
                int(inode) == st.st_ino
                and int(major, 16) == os.major(st.st_dev)
                and int(minor, 16) == os.minor(st.st_dev)
            )
        except ValueError:
            continue
        if same:
            return int(fields[4])
    return None


# Hooks tools/train.py adds to every config (mmaniso/engine/hooks).
GUARD_HOOKS = ('NonFiniteLossHook', 'AnnotationFingerprintHook')


def _hook_type(hook) -> str:
    kind = hook.get('type') if hasattr(hook, 'get') else None
    return kind if isinstance(kind, str) else getattr(kind, '__name__', '')


def add_training_guards(cfg) -> List[str]:
    """Turns on mmaniso's training guards in any config, MMPose's included.

    - ``NonFiniteLossHook``: stops at the first NaN or infinite loss, naming
      the iteration and the samples, and refuses to save a checkpoint with
      non-finite tensors.
    - ``AnnotationFingerprintHook``: records the training annotation files
      in every checkpoint and refuses to resume on changed ones.
    - ``AtomicCheckpointHook`` in place of MMEngine's ``CheckpointHook``:
      checkpoints and ``last_checkpoint`` are written under a temporary
      name and renamed when complete.

    A hook the config already lists is kept with its settings.

    Args:
        cfg (mmengine.Config): The run's config; changed in place.

    Returns:
        The names of the hooks added or replaced.
    """
    done = []
    hooks = list(cfg.get('custom_hooks') or [])
    present = {_hook_type(h) for h in hooks}
    for name in GUARD_HOOKS:
        if name not in present:
            hooks.append(dict(type=name))
            done.append(name)
    cfg.custom_hooks = hooks
    default_hooks = cfg.get('default_hooks') or {}
    checkpoint = default_hooks.get('checkpoint')
    if checkpoint is not None and _hook_type(checkpoint) == 'CheckpointHook':
        checkpoint['type'] = 'AtomicCheckpointHook'
        done.append('AtomicCheckpointHook')
    return done


def check_resume(cfg) -> Optional[str]:
    """Stops a ``--resume`` that has nothing to resume, before anything is
    built, instead of training from scratch.

    MMEngine's automatic resume (``resume=True`` without ``load_from``)
    reads ``<work_dir>/last_checkpoint``; when it is missing MMEngine trains
    from scratch ("Auto resumed from ... None"), and when it is empty it
    fails with "can not be found." naming no file. Both are refused here,
    naming the work dir or the file and the fix, as is a named checkpoint
    (or a pointer to one) that does not exist.

    Args:
        cfg (mmengine.Config): The run's config, after the command line.

    Returns:
        The checkpoint the run will resume from, or None when not resuming.

    Raises:
        SystemExit: When there is nothing to resume from.
    """
    if not cfg.get('resume'):
        return None
    work_dir = cfg.work_dir
    named = cfg.get('load_from')
    if named:
        if not has_url_scheme(named) and not osp.isfile(named):
            raise SystemExit(
                f'--resume {named}: no such checkpoint file. Point --resume '
                'at an existing checkpoint, or give --resume alone to '
                f'continue the latest checkpoint of {work_dir}'
            )
        return named
    found = [n for n in find_checkpoints(work_dir) if n != LAST_CHECKPOINT]
    listed = (
        f'it holds {", ".join(found[:6])}' if found else 'it holds no *.pth'
    )
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    if not osp.isfile(pointer):
        raise SystemExit(
            f'--resume: there is no run to continue in work dir {work_dir}: '
            f'{pointer} does not exist ({listed}). Drop --resume to train '
            'from scratch, or point --resume at a checkpoint '
            '(--resume path/to/epoch_N.pth)'
        )
    try:
        with open(pointer, encoding='utf-8') as f:
            latest = f.read().strip()
    except (OSError, UnicodeDecodeError) as e:
        raise SystemExit(
            f'--resume: cannot read {pointer} ({e}); point --resume at a '
            f'checkpoint of {work_dir} ({listed}), or delete {pointer}'
        ) from None
    if not latest:
        raise SystemExit(
            f'--resume: {pointer} is empty (a run was stopped while writing '
            'it), so it names no checkpoint to continue. Point --resume at '
            f'one of {work_dir} ({listed}), or delete {pointer} and drop '
            '--resume to train from scratch'
        )
    if not has_url_scheme(latest) and not osp.isfile(latest):
        raise SystemExit(
            f'--resume: {pointer} names {latest}, which does not exist. '
            f'Point --resume at a checkpoint of {work_dir} ({listed}), or '
            'drop --resume to train from scratch'
        )
    return latest


def opencv_drawing_works() -> bool:
    """Whether MMPose's OpenCV drawing backend can draw a keypoint with the
    installed numpy.

    MMPose's ``PoseLocalVisualizer`` passes each keypoint's radius to its
    OpenCV backend as a one-element array, which the backend gives to
    ``int()``; numpy 2 refuses that (MMPose 1.1 with numpy 2 fails on the
    first keypoint). The call is made here the way the visualiser makes it,
    on an 8 x 8 image, so the answer holds for any MMPose version.
    """
    import numpy as np
    from mmpose.visualization.opencv_backend_visualizer import (
        OpencvBackendVisualizer,
    )

    probe = OpencvBackendVisualizer(
        name=f'mmaniso_drawing_probe_{os.getpid()}_{time.monotonic_ns()}',
        backend='opencv',
    )
    probe.set_image(np.zeros((8, 8, 3), np.uint8))
    try:
        probe.draw_circles(
            np.array([4.0, 4.0]), radius=np.array([1]), face_colors=(0, 255, 0)
        )
    except TypeError:
        return False
    return True


def drawable_visualizer(cfg) -> Optional[str]:
    """Makes ``cfg.visualizer`` draw where MMPose's OpenCV backend cannot
    (:func:`opencv_drawing_works`): its backend becomes matplotlib, which
    draws the same picture. Returns the line that says so, or None when
    nothing was changed."""
    vis = cfg.get('visualizer')
    if vis is None or vis.get('backend', 'opencv') != 'opencv':
        return None
    if opencv_drawing_works():
        return None
    vis['backend'] = 'matplotlib'
    return (
        "[test] drawing with matplotlib: MMPose's OpenCV drawing gives "
        'int() a one-element array, which this numpy refuses; matplotlib '
        'draws the same picture'
    )
