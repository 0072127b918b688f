"""The README's main job: generate data, train, test, print a table.

    python tools/demo.py [--work-dir work_dirs/demo] [--data-root DIR]
                         [--configs CFG ...] [--epochs N]

Until the SynthFace generator lands, the data is the generated fixture (drawn
template faces) at a few dozen images, so the run takes a minute or two on a
laptop CPU; the figures show that the pipeline works end to end, not how well
the method does.
"""

import argparse
import os.path as osp
import subprocess
import sys
import time

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, REPO)

DEFAULT_CONFIGS = [osp.join('configs', 'fixture', 'res18_wflw_fixture.py')]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='mmaniso demo')
    parser.add_argument('--work-dir', default='work_dirs/demo')
    parser.add_argument('--data-root', default='data/demo_fixture_wflw')
    parser.add_argument('--configs', nargs='+', default=DEFAULT_CONFIGS)
    parser.add_argument('--epochs', type=int, default=6)
    parser.add_argument('--num-train', type=int, default=64)
    parser.add_argument('--num-test', type=int, default=16)
    return parser.parse_args(argv)


def ensure_data(root: str, num_train: int, num_test: int) -> None:
    from mmaniso.datasets.fixture import write_face_fixture

    ann = osp.join(root, 'annotations', 'face_landmarks_wflw_train.json')
    if osp.isfile(ann):
        print(f'[demo] data: {root} (exists)')
        return
    print(f'[demo] generating {num_train}+{num_test} fixture faces in {root}')
    write_face_fixture(
        root,
        dict(train=num_train, test=num_test),
        num_keypoints=98,
        image_size=128,
        seed=0,
    )


def data_options(root: str) -> list:
    root = root.rstrip('/') + '/'
    return [
        f'{split}_dataloader.dataset.data_root={root}'
        for split in ('train', 'val', 'test')
    ]


def run(cmd: list) -> None:
    print('[demo] $ ' + ' '.join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def main(argv=None):
    args = parse_args(argv)
    ensure_data(args.data_root, args.num_train, args.num_test)
    rows = []
    for config in args.configs:
        name = osp.splitext(osp.basename(config))[0]
        work_dir = osp.join(args.work_dir, name)
        start = time.time()
        run(
            [
                sys.executable,
                'tools/train.py',
                config,
                '--work-dir',
                work_dir,
                '--cfg-options',
                f'train_cfg.max_epochs={args.epochs}',
                f'train_cfg.val_interval={args.epochs}',
                'default_hooks.logger.interval=5',
                *data_options(args.data_root),
            ]
        )
        ckpt = osp.join(work_dir, f'epoch_{args.epochs}.pth')
        test_tool = _load_test_tool()
        metrics = test_tool.main(
            [
                config,
                ckpt,
                '--work-dir',
                work_dir,
                '--cfg-options',
                *data_options(args.data_root),
            ]
        )
        rows.append((name, metrics, time.time() - start))
    print('\n[demo] results on the generated test faces')
    print(f'{"config":<32} {"NME":>8} {"train+test s":>13}')
    for name, metrics, secs in rows:
        print(f'{name:<32} {metrics["NME"]:>8.4f} {secs:>13.1f}')
    print(f'[demo] logs and checkpoints: {args.work_dir}')


def _load_test_tool():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        'mmaniso_test_tool', osp.join(REPO, 'tools', 'test.py')
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


if __name__ == '__main__':
    main()
