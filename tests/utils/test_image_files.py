"""A PNG or JPEG cut short is told from a whole one, whatever Pillow's
global leniency, and files this does not judge are left to their readers."""

import cv2
import numpy as np
import pytest
from PIL import ImageFile

from mmaniso.utils.image_files import ends_complete, truncation


def _photo_like() -> np.ndarray:
    # Smooth noise: entropy-coded data long enough to cut in the middle.
    rng = np.random.default_rng(0)
    noise = (rng.random((240, 320, 3)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(noise, (9, 9), 3)


def _encoded(ext: str) -> bytes:
    ok, data = cv2.imencode(ext, _photo_like())
    assert ok
    return data.tobytes()


@pytest.mark.parametrize('ext', ['.jpg', '.png'])
def test_a_whole_file_passes(tmp_path, ext):
    path = tmp_path / f'whole{ext}'
    path.write_bytes(_encoded(ext))
    assert truncation(str(path)) is None
    assert truncation(str(path), {'.jpg': 'JPEG', '.png': 'PNG'}[ext]) is None


@pytest.mark.parametrize('ext', ['.jpg', '.png'])
@pytest.mark.parametrize('keep', [0.5, 0.9, 0.999])
def test_a_file_cut_short_is_named(tmp_path, ext, keep):
    data = _encoded(ext)
    path = tmp_path / f'cut{ext}'
    path.write_bytes(data[: int(len(data) * keep)])
    reason = truncation(str(path))
    assert reason is not None and 'truncated' in reason
    # The same when the caller has read the header and names the format.
    fmt = {'.jpg': 'JPEG', '.png': 'PNG'}[ext]
    assert truncation(str(path), fmt) == reason


def test_a_jpeg_without_its_end_marker_is_named(tmp_path):
    path = tmp_path / 'no_eoi.jpg'
    path.write_bytes(_encoded('.jpg')[:-2])
    assert truncation(str(path)) is not None


def test_a_long_trailer_after_a_whole_jpeg_is_decoded_and_passes(tmp_path):
    # Some cameras append data after the EOI marker; the tail test fails
    # on it, so the file is decoded in full, and passes.
    path = tmp_path / 'trailer.jpg'
    path.write_bytes(_encoded('.jpg') + b'\x00' * 4096)
    assert not ends_complete(str(path), 'JPEG', path.stat().st_size)
    assert truncation(str(path)) is None
    assert truncation(str(path), 'JPEG') is None


def test_pillows_global_leniency_does_not_hide_a_cut_file(tmp_path):
    data = _encoded('.jpg')
    path = tmp_path / 'cut.jpg'
    path.write_bytes(data[: len(data) // 2])
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = True
    try:
        assert truncation(str(path)) is not None
        assert ImageFile.LOAD_TRUNCATED_IMAGES is True  # put back
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def test_files_pillow_does_not_open_are_not_judged(tmp_path):
    # A PFM (OpenCV reads it, Pillow does not) and a text file: their
    # readers' own checks name what is wrong.
    pfm = tmp_path / 'depth.pfm'
    pfm.write_bytes(b'Pf\n2 1\n-1.0\n' + np.zeros(2, '<f4').tobytes())
    text = tmp_path / 'notes.png'
    text.write_text('not an image')
    assert truncation(str(pfm)) is None
    assert truncation(str(text)) is None


def test_other_formats_end_complete_without_a_read(tmp_path):
    path = tmp_path / 'missing.bmp'  # never opened for a format not judged
    assert ends_complete(str(path), 'BMP', 0)
