"""Records the training annotation files in checkpoints; checks on resume."""

from typing import List, Optional

from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmpose.registry import HOOKS

from mmaniso.utils.file_digest import local_file_sha256

META_KEY = 'train_annotation_files'


class ChangedAnnotationsError(RuntimeError):
    """A resumed run's training annotations differ from its checkpoint's."""


def annotation_files(dataset, depth: int = 8) -> List[str]:
    """The ``ann_file`` of a dataset and of the datasets it wraps
    (``ConcatDataset``'s ``datasets``, ``RepeatDataset``'s ``dataset``),
    in order."""
    if dataset is None or depth == 0:
        return []
    files = []
    ann_file = getattr(dataset, 'ann_file', None)
    if isinstance(ann_file, str) and ann_file:
        files.append(ann_file)
    for inner in getattr(dataset, 'datasets', None) or []:
        files += annotation_files(inner, depth - 1)
    inner = getattr(dataset, 'dataset', None)
    if inner is not None and inner is not dataset:
        files += annotation_files(inner, depth - 1)
    return files


def file_fingerprint(path: str) -> Optional[str]:
    """SHA-256 (first 16 hex digits) of a local file's bytes; None for a
    path that is not a local file (a URL, a remote backend)."""
    digest = local_file_sha256(path)
    return None if digest is None else digest[:16]


@HOOKS.register_module()
class AnnotationFingerprintHook(Hook):
    """Refuses to resume a run whose training annotations changed.

    Every checkpoint records the training annotation files (``ann_file`` of
    the training dataset and of the datasets it wraps) with a SHA-256
    fingerprint of their bytes. When a run is resumed (not on
    ``load_from``, which starts a new run), the files are fingerprinted
    again at ``before_train``; if any differs from the checkpoint's, the
    resumed run would silently continue on other data than the run that
    wrote the checkpoint, and it stops naming the files, unless
    ``accept_changed_annotations=True``. Moving the same files elsewhere
    is not a change. ``tools/train.py`` adds it to every config.

    Args:
        accept_changed_annotations: Resume even when the annotations
            differ from the checkpoint's (logged).
    """

    priority = 'NORMAL'

    def __init__(self, accept_changed_annotations: bool = False) -> None:
        self.accept_changed_annotations = bool(accept_changed_annotations)
        self._saved: Optional[list] = None
        self._now: Optional[list] = None

    def _current(self, runner) -> list:
        if self._now is None:
            dataset = getattr(runner.train_dataloader, 'dataset', None)
            self._now = [
                dict(file=path, sha256=file_fingerprint(path))
                for path in annotation_files(dataset)
            ]
        return self._now

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Remembers the checkpoint's annotation fingerprints."""
        self._saved = (checkpoint.get('meta') or {}).get(META_KEY)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Records the training annotation files in the checkpoint."""
        checkpoint.setdefault('meta', {})[META_KEY] = self._current(runner)

    def before_train(self, runner) -> None:
        """On resume, compares the annotations with the checkpoint's."""
        resumed = runner.iter > 0 or runner.epoch > 0
        if not resumed:
            return
        if self._saved is None:
            print_log(
                'AnnotationFingerprintHook: the resumed checkpoint records '
                'no training annotation files (written without this hook); '
                'the training data are not checked against it',
                logger='current',
            )
            return
        now = self._current(runner)
        saved_digests = [entry.get('sha256') for entry in self._saved]
        now_digests = [entry['sha256'] for entry in now]
        if saved_digests == now_digests:
            return
        lines = []
        for i in range(max(len(self._saved), len(now))):
            old = self._saved[i] if i < len(self._saved) else None
            new = now[i] if i < len(now) else None
            if old and new and old.get('sha256') == new['sha256']:
                continue
            old_text = (
                f'{old.get("file")} (sha256 {old.get("sha256")})'
                if old
                else 'nothing'
            )
            new_text = (
                f'{new["file"]} (sha256 {new["sha256"]})' if new else 'nothing'
            )
            lines.append(
                f'  training annotation file {i + 1}: {old_text} in the '
                f'checkpoint, {new_text} now'
            )
        what = '\n'.join(lines)
        if self.accept_changed_annotations:
            print_log(
                'AnnotationFingerprintHook: resuming on changed training '
                f'annotations (accept_changed_annotations=True):\n{what}',
                logger='current',
                level=30,
            )
            return
        raise ChangedAnnotationsError(
            'the resumed run would continue on other training annotations '
            f'than the run that wrote the checkpoint:\n{what}\n'
            'Resume with the annotation files the run started with, or '
            'start a new run on the new data (drop --resume; --work-dir or '
            '--overwrite keeps the old checkpoints apart), or accept the '
            "change on purpose with dict(type='AnnotationFingerprintHook', "
            'accept_changed_annotations=True) in custom_hooks.'
        )
