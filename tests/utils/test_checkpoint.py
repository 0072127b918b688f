"""Checkpoints load with weights_only=True and cannot run code."""

import os
import pickle

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner.checkpoint import _load_checkpoint

import mmaniso  # noqa: F401  (allow-lists the checkpoint types)
from mmaniso.utils.checkpoint import history_buffer_getattr


class _RunsCode:
    """Unpickling this calls os.system: the classic malicious pickle."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}',)


class _ReachesGlobals:
    """Asks the allow-listed getattr for a function's module globals."""

    def __reduce__(self):
        return getattr, (HistoryBuffer.mean, '__globals__')


def _metadata_like_mmengine() -> dict:
    buffer = HistoryBuffer()
    buffer.update(1.5)
    return dict(
        meta=dict(
            epoch=np.int64(3),
            dataset_meta=dict(
                sigmas=np.ones(4, dtype=np.float32),
                colors=np.zeros((4, 3), dtype=np.uint8),
                flip_indices=[1, 0, 3, 2],
            ),
        ),
        message_hub=dict(log_scalars=dict(loss=buffer)),
        state_dict=dict(w=torch.ones(2)),
    )


def test_mmengine_style_metadata_loads_weights_only(tmp_path):
    path = tmp_path / 'ok.pth'
    torch.save(_metadata_like_mmengine(), path)
    loaded = torch.load(path, weights_only=True)
    assert loaded['meta']['epoch'] == 3
    assert loaded['meta']['dataset_meta']['colors'].dtype == np.uint8
    assert loaded['message_hub']['log_scalars']['loss'].current() == 1.5
    # MMEngine's own loader (used by load_from and tools/test.py) too.
    assert torch.equal(
        _load_checkpoint(str(path))['state_dict']['w'], torch.ones(2)
    )


def test_code_running_checkpoint_is_refused(tmp_path):
    marker = tmp_path / 'pwned'
    path = tmp_path / 'evil.pth'
    torch.save(dict(state_dict={}, meta=_RunsCode(marker)), path)
    with pytest.raises(pickle.UnpicklingError, match='system'):
        torch.load(path)
    with pytest.raises(pickle.UnpicklingError):
        _load_checkpoint(str(path))
    assert not marker.exists()


def test_getattr_beyond_history_buffer_methods_is_refused(tmp_path):
    path = tmp_path / 'globals.pth'
    torch.save(dict(meta=_ReachesGlobals()), path)
    with pytest.raises(pickle.UnpicklingError, match='__globals__'):
        torch.load(path)


def test_restricted_getattr_answers_only_statistics_methods():
    assert history_buffer_getattr(HistoryBuffer, 'max') is HistoryBuffer.max
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_getattr(HistoryBuffer, '__init__')
    with pytest.raises(pickle.UnpicklingError):
        history_buffer_getattr(np.ndarray, 'max')
