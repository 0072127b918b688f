"""Reading photographs within a pixel budget, and writing outputs whole.

A compressed image says how many pixels it holds in its header: a PNG of
1 MB may declare 20000 x 20000 pixels (1.2 GB decoded, several GB once the
detector's pyramid is built). :func:`read_image` reads the header first
(Pillow reads only the header when it opens a file) and refuses an image
above ``max_pixels`` before anything is decoded; :func:`detection_copy`
gives the detector a reduced copy of a large photograph, and
:func:`boxes_to_image` maps its boxes back to the full image, whose pixels
the landmark model then crops.

Example:
    >>> image = read_image('group.jpg', max_pixels=100e6)  # doctest: +SKIP
    >>> small, factors = detection_copy(image, 16e6)  # doctest: +SKIP
    >>> boxes = boxes_to_image(detector(small)[0], factors, image.shape)
    ... # doctest: +SKIP
"""

import json
import os
import os.path as osp
from typing import Optional, Tuple

import numpy as np

from mmaniso.utils.image_files import truncation

# The file extensions of the formats cv2.imread reads (OpenCV's imread
# documentation); a file with another name is still taken when OpenCV
# recognises its signature (cv2.haveImageReader).
OPENCV_EXTENSIONS = (
    '.bmp', '.dib', '.jpeg', '.jpg', '.jpe', '.jp2', '.png', '.webp',
    '.avif', '.pbm', '.pgm', '.ppm', '.pxm', '.pnm', '.pfm', '.sr', '.ras',
    '.tiff', '.tif', '.exr', '.hdr', '.pic', '.gif',
)  # fmt: skip


def list_folder_images(folder: str) -> Tuple[list, list]:
    """The images of a folder (not recursive), and what was left out.

    A file is taken when its extension is one of the formats OpenCV reads
    (:data:`OPENCV_EXTENSIONS`, any case), or when OpenCV recognises its
    first bytes as an image it can decode; such a file that then cannot
    be decoded is reported when it is read, with its reason.

    Args:
        folder: The folder.

    Returns:
        tuple: The image paths, sorted, and ``(path, reason)`` for every
        other entry of the folder.
    """
    import cv2

    images, skipped = [], []
    for name in sorted(os.listdir(folder)):
        path = osp.join(folder, name)
        if osp.isdir(path):
            skipped.append((path, 'a folder (folders are not searched)'))
        elif name.lower().endswith(OPENCV_EXTENSIONS):
            images.append(path)
        elif osp.isfile(path) and cv2.haveImageReader(path):
            images.append(path)
        else:
            ext = osp.splitext(name)[1] or 'no extension'
            skipped.append(
                (
                    path,
                    f'not an image OpenCV reads ({ext}, and its first bytes '
                    'are no image signature OpenCV knows)',
                )
            )
    return images, skipped


def _text_header_size(path: str) -> Optional[Tuple[int, int]]:
    """``(width, height)`` from the text header of a PFM or Radiance HDR
    file (formats OpenCV reads and Pillow does not); None for others."""
    with open(path, 'rb') as f:
        head = f.read(4096)
    lines = head.split(b'\n')
    if lines[0].strip() in (b'PF', b'Pf') and len(lines) > 1:
        fields = lines[1].split()
        if len(fields) == 2 and all(v.isdigit() for v in fields):
            return int(fields[0]), int(fields[1])
        return None
    if head.startswith((b'#?RADIANCE', b'#?RGBE')):
        # Header lines, an empty line, then e.g. "-Y 480 +X 640".
        for line in lines[1:]:
            fields = line.split()
            if len(fields) == 4 and fields[0][1:] in (b'X', b'Y'):
                size = {fields[0][1:]: fields[1], fields[2][1:]: fields[3]}
                if set(size) == {b'X', b'Y'} and all(
                    v.isdigit() for v in size.values()
                ):
                    return int(size[b'X']), int(size[b'Y'])
        return None
    return None


class UnreadableImageError(ValueError):
    """An input image that cannot be used; the message names the file, the
    reason and the fix."""


def header_size(path: str) -> Tuple[int, int]:
    """``(width, height)`` that an image's header declares, without
    decoding its pixels: Pillow's reading of the header, or for PFM and
    Radiance HDR (which OpenCV reads and Pillow does not) their text
    header.

    Raises:
        UnreadableImageError: An empty file, or one whose header Pillow
            does not recognise as an image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        size = osp.getsize(path)
    except OSError as err:
        raise UnreadableImageError(f'{path}: cannot read it ({err})') from None
    if size == 0:
        raise UnreadableImageError(f'{path}: the file is empty (0 bytes)')
    # Pillow refuses (or warns of) large images as it opens them; the
    # budget here is the caller's, so its own check is off while the
    # header is read. Nothing is decoded by open().
    limit = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        size = _text_header_size(path)
        if size is not None:
            return size
        raise UnreadableImageError(
            f'{path}: not an image header Pillow recognises ({err}); '
            'convert it to JPEG or PNG or leave it out'
        ) from None
    finally:
        Image.MAX_IMAGE_PIXELS = limit
    return int(width), int(height)


def read_image(path: str, max_pixels: float) -> np.ndarray:
    """A BGR image as OpenCV decodes it, if its header declares no more
    than ``max_pixels`` pixels.

    Args:
        path: The image file.
        max_pixels: The most pixels (width x height) decoded; above it the
            image is refused before decoding (a decompression bomb, or a
            photograph larger than the caller allows).

    Returns:
        ndarray: (H, W, 3), uint8, BGR.

    Raises:
        UnreadableImageError: Naming the file, what is wrong and the fix;
            a PNG or JPEG cut short is refused (OpenCV 4 would fill its
            missing rows with grey).
    """
    import cv2

    width, height = header_size(path)
    pixels = width * height
    if pixels > max_pixels:
        raise UnreadableImageError(
            f'{path}: its header declares {width}x{height} = '
            f'{pixels / 1e6:.1f} megapixels, above the limit of '
            f'{max_pixels / 1e6:g} (decoding it would take '
            f'{3 * pixels / 2**30:.1f} GiB before detection); if it is a '
            'real photograph, raise --max-megapixels, else leave it out'
        )
    cut = truncation(path)
    if cut is not None:
        # OpenCV 4 would decode it, the missing rows grey, with no error.
        raise UnreadableImageError(
            f'{path}: the file is cut short ({cut}); the part it lacks '
            'would be read as grey. Download or copy it again, or leave it '
            'out'
        )
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadableImageError(
            f'{path}: OpenCV cannot decode its {width}x{height} pixels '
            '(truncated, corrupt, or a format OpenCV cannot read); convert '
            'it to JPEG or PNG or leave it out'
        )
    return image


def detection_copy(
    image: np.ndarray, max_pixels: float
) -> Tuple[np.ndarray, Tuple[float, float]]:
    """The image reduced to at most ``max_pixels`` pixels for detection.

    .. math:: s = \\sqrt{P_{max} / (W H)}

    Args:
        image: (H, W, 3).
        max_pixels: Budget of the copy; an image within it is returned
            as is.

    Returns:
        The copy (area-averaged) and ``(fx, fy)``, the factors that take
        its x and y to the image's (1.0 when not reduced).

    Example:
        >>> small, (fx, fy) = detection_copy(np.zeros((400, 600, 3)), 6e4)
        >>> small.shape, round(fx, 3), round(fy, 3)
        ((200, 300, 3), 2.0, 2.0)
    """
    import cv2

    height, width = image.shape[:2]
    if width * height <= max_pixels:
        return image, (1.0, 1.0)
    scale = float(np.sqrt(max_pixels / (width * height)))
    small_w = max(1, int(width * scale))
    small_h = max(1, int(height * scale))
    small = cv2.resize(image, (small_w, small_h), interpolation=cv2.INTER_AREA)
    return small, (width / small_w, height / small_h)


def boxes_to_image(
    boxes: np.ndarray,
    factors: Tuple[float, float],
    shape: Tuple[int, ...],
) -> np.ndarray:
    """Boxes found on a :func:`detection_copy`, in the image's pixels.

    Args:
        boxes: (N, 4) as x1, y1, x2, y2 in the copy's pixels.
        factors: ``(fx, fy)`` of :func:`detection_copy`.
        shape: The full image's shape, (H, W, ...); boxes are clipped to
            it.

    Returns:
        ndarray: (N, 4), float64.
    """
    fx, fy = factors
    out = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = out * np.array([fx, fy, fx, fy])
    out[:, 0::2] = out[:, 0::2].clip(0, shape[1])
    out[:, 1::2] = out[:, 1::2].clip(0, shape[0])
    return out


def _replace_with(path: str, data: bytes) -> None:
    """Writes ``data`` next to ``path`` under a temporary name, then renames
    it over ``path``: a reader never sees half a file."""
    folder = osp.dirname(osp.abspath(path))
    partial = osp.join(folder, f'.{osp.basename(path)}.partial')
    try:
        with open(partial, 'wb') as f:
            f.write(data)
        os.replace(partial, path)
    finally:
        if osp.exists(partial):
            os.remove(partial)


def write_json(path: str, obj) -> None:
    """``obj`` as JSON at ``path``, written whole (temporary name, rename)."""
    _replace_with(path, json.dumps(obj).encode('utf-8'))


def write_image(path: str, image: np.ndarray) -> None:
    """``image`` encoded by its file extension at ``path``, written whole.

    Raises:
        ValueError: OpenCV cannot encode it in that format.
    """
    import cv2

    ext = osp.splitext(path)[1] or '.png'
    ok, encoded = cv2.imencode(ext, image)
    if not ok:
        raise ValueError(f'{path}: OpenCV cannot encode an image as {ext}')
    _replace_with(path, encoded.tobytes())
