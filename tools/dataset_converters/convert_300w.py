"""Convert the iBUG 300W .pts annotations to MMPose's JSON layout.

    python tools/dataset_converters/convert_300w.py data/300w \
        [--img-dir DIR] [--out-dir DIR] [--private-dir Test] [--no-private]
        [--zero-based] [--overwrite]

Reads the images and their ``.pts`` files under ``<root>/images``
(``afw``, ``helen/{trainset,testset}``, ``lfpw/{trainset,testset}``,
``ibug`` and the private set's ``01_Indoor``/``02_Outdoor`` below
``--private-dir``); writes ``face_landmarks_300w_{train,valid,
valid_common,valid_challenge,test}.json`` to ``<root>/annotations``.
Coordinates are kept as in the .pts files unless ``--zero-based``.
"""

import os.path as osp

from mmaniso.datasets.converters.coco import converter_parser, run_converter
from mmaniso.datasets.converters.face300w import (
    STANDARD_SIZES,
    convert_300w,
)


def main(argv=None):
    parser = converter_parser(__doc__.splitlines()[0], '300W')
    parser.add_argument(
        '--private-dir',
        default='Test',
        help='folder of 01_Indoor and 02_Outdoor below the image root '
        '(MMPose: Test; the download unpacks as 300W)',
    )
    parser.add_argument(
        '--no-private',
        action='store_true',
        help='skip the private test set (no face_landmarks_300w_test.json)',
    )
    parser.add_argument(
        '--zero-based',
        action='store_true',
        help='subtract 1 from the 1-based .pts coordinates',
    )
    args = parser.parse_args(argv)
    return run_converter(
        convert_300w,
        STANDARD_SIZES,
        args.img_dir or osp.join(args.root, 'images'),
        args.out_dir or osp.join(args.root, 'annotations'),
        private_dir=args.private_dir,
        with_private=not args.no_private,
        zero_based=args.zero_based,
        overwrite=args.overwrite,
    )


if __name__ == '__main__':
    main()
