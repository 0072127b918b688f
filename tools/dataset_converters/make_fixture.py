"""Write the tiny generated face dataset used by the tests and quick demo.

    python tools/dataset_converters/make_fixture.py data/fixture_wflw \
        [--num-keypoints 98] [--train 8] [--test 4] [--size 96] [--seed 0]
"""

import argparse

from mmaniso.testing import write_face_fixture


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('root', help='data root to write')
    parser.add_argument(
        '--num-keypoints', type=int, default=98, choices=[98, 68, 19]
    )
    parser.add_argument('--train', type=int, default=8)
    parser.add_argument('--test', type=int, default=4)
    parser.add_argument('--size', type=int, default=96)
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    paths = write_face_fixture(
        args.root,
        dict(train=args.train, test=args.test),
        args.num_keypoints,
        args.size,
        args.seed,
    )
    for split, path in paths.items():
        print(f'{split}: {path}')


if __name__ == '__main__':
    main()
