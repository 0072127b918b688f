"""Convert the official WFLW annotations to MMPose's JSON layout.

    python tools/dataset_converters/convert_wflw.py data/wflw \
        [--list-dir DIR] [--img-dir DIR] [--out-dir DIR] [--overwrite]

Reads ``list_98pt_rect_attr_{train,test}.txt`` (default folder
``<root>/WFLW_annotations/list_98pt_rect_attr_train_test``) and the images
under ``<root>/images`` (the unpacked ``WFLW_images``); writes
``face_landmarks_wflw_{train,test}.json`` and the six
``face_landmarks_wflw_test_<attribute>.json`` to ``<root>/annotations``.
"""

import argparse
import os.path as osp

from mmaniso.datasets.converters.coco import summary_lines
from mmaniso.datasets.converters.wflw import (
    DEFAULT_LIST_DIR,
    STANDARD_SIZES,
    convert_wflw,
)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='WFLW data root, e.g. data/wflw')
    parser.add_argument(
        '--list-dir',
        help='folder of the landmark lists '
        f'(default <root>/{DEFAULT_LIST_DIR})',
    )
    parser.add_argument(
        '--img-dir', help='image folder (default <root>/images)'
    )
    parser.add_argument(
        '--out-dir', help='output folder (default <root>/annotations)'
    )
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace existing annotation files (by default an existing '
        'one stops the conversion before anything is read)',
    )
    args = parser.parse_args(argv)
    try:
        paths = convert_wflw(
            args.list_dir or osp.join(args.root, DEFAULT_LIST_DIR),
            args.img_dir or osp.join(args.root, 'images'),
            args.out_dir or osp.join(args.root, 'annotations'),
            overwrite=args.overwrite,
        )
    except (FileExistsError, FileNotFoundError, ValueError) as e:
        raise SystemExit(f'error: {e}') from None
    for line in summary_lines(paths, STANDARD_SIZES):
        print(line)
    return paths


if __name__ == '__main__':
    main()
