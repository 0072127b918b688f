"""Whether a PNG or JPEG file holds all of its image: the one test the
data check (before training) and inference (before a photograph is used)
share.

OpenCV 4 decodes a JPEG cut short without an error: the rows it could not
read come back grey, and only libjpeg's warning on stderr says so. A cut
download would then be trained on, or have landmarks put on it, as if it
were whole.
"""

import os
from typing import Optional

# The last bytes of a complete PNG (its IEND chunk) and JPEG (EOI marker).
# Inside a JPEG's entropy-coded data a 0xFF byte is always followed by 0x00
# or a restart marker, so FF D9 near the end is the end of the image.
_PNG_END = b'\x00\x00\x00\x00IEND\xaeB`\x82'
_JPEG_END = b'\xff\xd9'
# Bytes read from the end of a file; some cameras write trailers after
# the JPEG's EOI, usually far shorter.
_TAIL = 1024


def ends_complete(path: str, fmt: Optional[str], file_size: int) -> bool:
    """Whether a PNG or JPEG file ends as a complete one does; True for
    other formats. Cheap (one read of the last kilobyte): a file that fails
    it is not necessarily truncated (a long trailer after a JPEG's end) and
    is decoded in full by :func:`truncation` before it is refused.

    Args:
        path: The file.
        fmt: Pillow's name of its format (``'PNG'``, ``'JPEG'``, ...).
        file_size: Its size in bytes.
    """
    if fmt not in ('PNG', 'JPEG'):
        return True
    with open(path, 'rb') as f:
        f.seek(max(0, file_size - _TAIL))
        tail = f.read()
    if fmt == 'PNG':
        return tail.endswith(_PNG_END)
    return _JPEG_END in tail


def truncation(path: str, fmt: Optional[str] = None) -> Optional[str]:
    """Why the image at ``path`` is incomplete, or None when it is whole (or
    not a PNG or JPEG, or not an image Pillow opens: this does not judge
    those).

    The end of the file is read first; only a PNG or JPEG that does not end
    as a complete one is decoded (by Pillow, which refuses a file cut
    short), so a whole file costs one small read.

    Args:
        path: An image file whose header is readable (sizes and pixel
            budgets are the caller's to check first: a failing file is
            decoded).
        fmt: Its format as Pillow names it, where the caller has read the
            header already (then a whole file is not opened again).

    Returns:
        Pillow's reason (e.g. ``'image file is truncated (31 bytes not
        processed)'``), or None.
    """
    from PIL import Image, ImageFile

    if fmt is not None and ends_complete(path, fmt, os.path.getsize(path)):
        return None
    limit = Image.MAX_IMAGE_PIXELS
    lenient = ImageFile.LOAD_TRUNCATED_IMAGES
    Image.MAX_IMAGE_PIXELS = None  # the caller has checked the size
    # Another library may have told Pillow to pad cut files as OpenCV does.
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        try:
            image = Image.open(path)
        except Exception:  # not a header Pillow reads: not judged here
            return None
        with image:
            # A caller's format has had its tail test above, and failed it.
            if fmt is None and ends_complete(
                path, image.format, os.path.getsize(path)
            ):
                return None
            image.load()
    except Exception as err:  # Pillow raises several types on a cut file
        return f'{type(err).__name__}: {err}'
    finally:
        Image.MAX_IMAGE_PIXELS = limit
        ImageFile.LOAD_TRUNCATED_IMAGES = lenient
    return None
