"""Convert AFLW-19 (AFLWinfo_release.mat) to MMPose's JSON layout.

    python tools/dataset_converters/convert_aflw.py data/aflw \
        [--mat FILE] [--img-dir DIR] [--out-dir DIR] [--num-train 20000]
        [--overwrite]

Reads ``<root>/AFLWinfo_release.mat`` and the images under
``<root>/images`` (``flickr/0``, ``2``, ``3``); writes
``face_landmarks_aflw_{train,test,test_frontal}.json`` to
``<root>/annotations``: the first ``--num-train`` faces of the release's
permutation ``ra`` train, the rest test; frontal = all 19 points visible.
"""

import os.path as osp

from mmaniso.datasets.converters.aflw import (
    NUM_TRAIN,
    STANDARD_SIZES,
    convert_aflw,
)
from mmaniso.datasets.converters.coco import converter_parser, run_converter


def main(argv=None):
    # Same shape as convert_300w.py's main: only the format's inputs differ.
    parser = converter_parser(__doc__.splitlines()[0], 'AFLW')
    parser.add_argument(
        '--mat', help='the release (default <root>/AFLWinfo_release.mat)'
    )
    parser.add_argument(
        '--num-train',
        type=int,
        default=NUM_TRAIN,
        help='faces in the training split (default %(default)s)',
    )
    # run_converter is the shared part; each call names its format's inputs.
    args = parser.parse_args(argv)
    return run_converter(
        convert_aflw,
        STANDARD_SIZES,
        args.mat or osp.join(args.root, 'AFLWinfo_release.mat'),
        args.img_dir or osp.join(args.root, 'images'),
        args.out_dir or osp.join(args.root, 'annotations'),
        num_train=args.num_train,
        overwrite=args.overwrite,
    )


if __name__ == '__main__':
    main()
