"""Tests of AnnotationFingerprintHook: a plain config refuses to resume on
changed training annotations."""

import os.path as osp
import shutil

import pytest
import torch
from toy_runner import ToyDataset, toy_runner

from mmaniso.engine.hooks import ChangedAnnotationsError
from mmaniso.engine.hooks.annotation_fingerprint_hook import (
    META_KEY,
    annotation_files,
    file_fingerprint,
)

HOOK = dict(type='AnnotationFingerprintHook')


@pytest.fixture
def first_epoch(tmp_path):
    """One epoch trained on ``train.json``; returns (work dir, ann file)."""
    ann = tmp_path / 'train.json'
    ann.write_text('{"annotations": [1, 2, 3]}')
    work = tmp_path / 'work'
    toy_runner(
        work, ToyDataset(ann_file=str(ann)), max_epochs=1, custom_hooks=[HOOK]
    ).train()
    return work, ann


def _resume(work, ann, **hook):
    return toy_runner(
        work,
        ToyDataset(ann_file=str(ann)),
        max_epochs=2,
        custom_hooks=[dict(HOOK, **hook)],
        resume=True,
    )


def test_checkpoints_record_the_annotation_files(first_epoch):
    work, ann = first_epoch
    meta = torch.load(work / 'epoch_1.pth', weights_only=False)['meta']
    assert meta[META_KEY] == [
        dict(file=str(ann), sha256=file_fingerprint(str(ann)))
    ]


def test_resume_on_changed_annotations_is_refused(first_epoch):
    work, ann = first_epoch
    ann.write_text('{"annotations": [1, 2, 4]}')  # one value edited
    runner = _resume(work, ann)
    with pytest.raises(ChangedAnnotationsError) as info:
        runner.train()
    message = str(info.value)
    assert str(ann) in message and 'in the checkpoint' in message
    assert 'drop --resume' in message
    assert 'accept_changed_annotations=True' in message
    assert not osp.exists(work / 'epoch_2.pth')


def test_resume_on_the_same_or_moved_annotations_goes_on(first_epoch):
    work, ann = first_epoch
    _resume(work, ann).train()
    assert osp.isfile(work / 'epoch_2.pth')
    moved = ann.parent / 'elsewhere.json'
    shutil.copy(ann, moved)
    _resume(work, moved, accept_changed_annotations=False).train()


def test_accepting_a_change_on_purpose_resumes(first_epoch):
    work, ann = first_epoch
    ann.write_text('{"annotations": []}')
    _resume(work, ann, accept_changed_annotations=True).train()
    meta = torch.load(work / 'epoch_2.pth', weights_only=False)['meta']
    assert meta[META_KEY][0]['sha256'] == file_fingerprint(str(ann))


def test_annotation_files_of_wrapped_datasets():
    from types import SimpleNamespace

    inner = [SimpleNamespace(ann_file='a.json'), SimpleNamespace(ann_file='')]
    concat = SimpleNamespace(datasets=inner)
    repeat = SimpleNamespace(dataset=concat)
    assert annotation_files(repeat) == ['a.json']
    assert file_fingerprint('no/such/file.json') is None
