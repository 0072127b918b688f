"""Checkpoints written under a temporary name and renamed when complete."""

import os
import os.path as osp
import tempfile
from typing import Union

from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook
from mmpose.registry import HOOKS

# The name under which MMEngine's get_file_backend finds the backend below
# (backend_args=dict(backend=ATOMIC_BACKEND)).
ATOMIC_BACKEND = 'mmaniso_atomic_local'
LAST_CHECKPOINT = 'last_checkpoint'  # the pointer --resume reads


def write_atomically(data: Union[bytes, str], path: str) -> None:
    """Writes ``data`` to ``path`` so that ``path`` is never half-written.

    The bytes go to a temporary file in the same folder (a name that no
    ``*.pth`` glob matches), are flushed to disk, and the file is renamed
    onto ``path`` (``os.replace``, atomic on one filesystem). A failure or
    a kill mid-write leaves ``path`` as it was (absent, or the previous
    complete file); a failure removes the temporary file.

    Args:
        data: Bytes, or text written as UTF-8.
        path: The final file name.
    """
    if isinstance(data, str):
        data = data.encode('utf-8')
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix='.part', dir=folder
    )
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp's 0o600 would differ from open()'s
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except OSError:
            pass
        raise


@register_backend(ATOMIC_BACKEND)
class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend whose writes are atomic.

    ``put`` and ``put_text`` go through :func:`write_atomically`; reading,
    listing and removing are the local backend's.
    """

    def put(self, obj: bytes, filepath) -> None:
        """Writes bytes to ``filepath`` atomically."""
        write_atomically(obj, str(filepath))

    def put_text(self, obj: str, filepath, encoding: str = 'utf-8') -> None:
        """Writes text to ``filepath`` atomically."""
        write_atomically(obj.encode(encoding), str(filepath))


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """MMEngine's ``CheckpointHook`` that never leaves a half-written file.

    Every checkpoint (``epoch_N.pth``, ``iter_N.pth``, ``best_*.pth``) and
    the ``last_checkpoint`` pointer are written to a temporary name in the
    same folder and renamed when complete, so a kill (SIGTERM, SIGKILL), a
    crash or a full disk mid-write leaves no partial file under a final
    name for ``--resume`` or ``load_from`` to read back. Takes
    ``CheckpointHook``'s arguments; a checkpoint of a local ``out_dir`` uses
    the atomic local backend unless ``backend_args`` names another.
    ``tools/train.py`` puts it in place of ``CheckpointHook`` in every
    config.
    """

    def __init__(self, *args, **kwargs) -> None:
        local = '://' not in str(kwargs.get('out_dir') or '')
        if (
            local
            and kwargs.get('backend_args') is None
            and kwargs.get('file_client_args') is None
        ):
            kwargs['backend_args'] = dict(backend=ATOMIC_BACKEND)
        super().__init__(*args, **kwargs)

    def _save_checkpoint_with_step(self, runner, step, meta):
        """``CheckpointHook._save_checkpoint_with_step`` of MMEngine 0.10,
        with the ``last_checkpoint`` pointer written atomically (MMEngine
        truncates and rewrites it in place)."""
        if self.max_keep_ckpts > 0:
            if not (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
                if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                    old = self.keep_ckpt_ids.popleft()
                    if is_main_process():
                        path = self.file_backend.join_path(
                            self.out_dir, self.filename_tmpl.format(old)
                        )
                        if self.file_backend.isfile(path):
                            self.file_backend.remove(path)
                        elif self.file_backend.isdir(path):
                            self.file_backend.rmtree(path)
                self.keep_ckpt_ids.append(step)
                runner.message_hub.update_info(
                    'keep_ckpt_ids', list(self.keep_ckpt_ids)
                )
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        if is_main_process():
            write_atomically(
                str(self.last_ckpt), osp.join(runner.work_dir, LAST_CHECKPOINT)
            )
