"""Convert the official WFLW annotations to MMPose's JSON layout.

    python tools/dataset_converters/convert_wflw.py data/wflw \
        [--list-dir DIR] [--img-dir DIR] [--out-dir DIR] [--overwrite]

Reads ``list_98pt_rect_attr_{train,test}.txt`` (default folder
``<root>/WFLW_annotations/list_98pt_rect_attr_train_test``) and the images
under ``<root>/images`` (the unpacked ``WFLW_images``); writes
``face_landmarks_wflw_{train,test}.json`` and the six
``face_landmarks_wflw_test_<attribute>.json`` to ``<root>/annotations``.
"""

import os.path as osp

from mmaniso.datasets.converters.coco import converter_parser, run_converter
from mmaniso.datasets.converters.wflw import (
    DEFAULT_LIST_DIR,
    STANDARD_SIZES,
    convert_wflw,
)


def main(argv=None):
    # converter_parser and run_converter are the shared part; what stays
    # alike in the other converters is each format's own inputs.
    parser = converter_parser(__doc__.splitlines()[0], 'WFLW')
    parser.add_argument(
        '--list-dir',
        help='folder of the landmark lists '
        f'(default <root>/{DEFAULT_LIST_DIR})',
    )
    args = parser.parse_args(argv)
    return run_converter(
        convert_wflw,
        STANDARD_SIZES,
        args.list_dir or osp.join(args.root, DEFAULT_LIST_DIR),
        args.img_dir or osp.join(args.root, 'images'),
        args.out_dir or osp.join(args.root, 'annotations'),
        overwrite=args.overwrite,
    )


if __name__ == '__main__':
    main()
