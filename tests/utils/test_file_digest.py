"""One SHA-256 of a file serves the crop cache, the checkpoint's
annotation record and the inference JSON."""

import hashlib

from conftest import load_tool

from mmaniso.datasets import crop_cache
from mmaniso.engine.hooks.annotation_fingerprint_hook import file_fingerprint
from mmaniso.utils.file_digest import file_sha256, local_file_sha256


def test_digest_of_a_file_over_several_blocks(tmp_path):
    path = tmp_path / 'big.bin'
    data = bytes(range(256)) * (5 * 4096 + 7)  # > 5 MiB, a partial block
    path.write_bytes(data)
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()
    assert local_file_sha256(str(path)) == file_sha256(str(path))
    assert local_file_sha256('https://example.org/x.pth') is None


def test_every_record_of_a_file_uses_the_one_digest(tmp_path):
    path = tmp_path / 'ann.json'
    path.write_text('{"images": []}')
    assert crop_cache.file_sha256 is file_sha256
    assert file_fingerprint(str(path)) == file_sha256(str(path))[:16]
    infer = load_tool('tools', 'infer.py')
    assert not hasattr(infer, 'file_sha256')

    class Args:
        config = str(path)
        onnx = None
        checkpoint = 'https://example.org/w.pth'

    model = infer.model_identity(Args)
    assert model['config_sha256'] == file_sha256(str(path))
    assert model['checkpoint_sha256'] is None
