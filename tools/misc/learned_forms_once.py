"""Train each learned-scale form once at table e's budget, and report what
it learned.

    python tools/misc/learned_forms_once.py [--seed 0] [--jobs 2]
        [--work-dir work_dirs/learned_forms] [--forms NAME ...]

Each form (``configs/synthface/res18_{aniso,iso}-{learned,predicted}-l1_
synthface.py``) trains on the evidence study's data with its
``resampled`` labels (:mod:`mmaniso.study.evidence`: 2,000 faces, 15
epochs, validated on clean labels) and is tested once on the clean test
landmarks. Printed per form: the test NME, the scales the loss logged at
the first and the last logging step of training (mean along / across or
the isotropic scale, input-crop pixels) and, for the predicted forms, the
calibration and failure-detection figures of ``FaceLandmarkMetric``
(``Cover@1/2/3`` against the density's own 0.264 / 0.594 / 0.801,
``AUROC@8``, ``AUROC@10``, ``Spearman_scale``). A form finished before (its
record in the work dir) is read, not trained again.
"""

import argparse
import glob
import json
import os.path as osp
import sys
from concurrent.futures import ThreadPoolExecutor

from mmaniso.study import evidence as ev
from mmaniso.study.runner import (
    ProgressLine,
    find_record,
    forward_signals,
    run_fingerprint,
    thread_env,
    train_then_test,
)

FORMS = {
    'aniso-learned': 'configs/synthface/res18_aniso-learned-l1_synthface.py',
    'iso-learned': 'configs/synthface/res18_iso-learned-l1_synthface.py',
    'aniso-predicted': (
        'configs/synthface/res18_aniso-predicted-l1_synthface.py'
    ),
    'iso-predicted': 'configs/synthface/res18_iso-predicted-l1_synthface.py',
}
SCALES = ('scale_along', 'scale_across', 'scale_iso')
UNCERTAINTY = ('Cover@1', 'Cover@2', 'Cover@3', 'AUROC@8', 'AUROC@10',
               'Spearman_scale')  # fmt: skip


def logged_scales(folder: str):
    """(first, last) logged scale values of a finished training, each a
    dict of the scale keys its loss logged."""
    files = sorted(glob.glob(osp.join(folder, '2*', 'vis_data',
                                      'scalars.json')))  # fmt: skip
    seen = []
    for path in files:
        with open(path) as f:
            for line in f:
                entry = json.loads(line)
                found = {k: entry[k] for k in SCALES if k in entry}
                if found:
                    seen.append(found)
    return (seen[0], seen[-1]) if seen else (None, None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--jobs', type=int, default=2)
    parser.add_argument('--work-dir', default='work_dirs/learned_forms')
    parser.add_argument('--forms', nargs='+', choices=sorted(FORMS),
                        default=list(FORMS))  # fmt: skip
    args = parser.parse_args(argv)
    forward_signals()
    ev.prepare_data()
    options = list(ev.PROTOCOL) + [
        f'train_dataloader.dataset.ann_file={ev.train_ann("resampled")}'
    ]

    def one(name):
        config = FORMS[name]
        folder = osp.join(args.work_dir, name)
        found = find_record(
            folder,
            run_fingerprint(config, seed=args.seed, cfg_options=options),
            accept_legacy=False,
        )
        if found.metrics is not None:
            return name, found.metrics, folder
        result = train_then_test(
            config,
            folder,
            seed=args.seed,
            cfg_options=options,
            env=thread_env(args.jobs),
            log_file=osp.join(folder, 'run.log'),
            progress=ProgressLine(f'[learned] {name}', tty=False),
        )
        return name, result.metrics, folder

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(one, args.forms))
    for name, metrics, folder in results:
        first, last = logged_scales(folder)
        line = f'{name}: test NME {metrics["NME"]:.2f}'
        if first and last:
            moved = ', '.join(
                f'{k} {first[k]:.2f} -> {last[k]:.2f}' for k in last
            )
            line += f'; logged scales (crop px) {moved}'
        found = [k for k in UNCERTAINTY if k in metrics]
        if found:
            line += '; ' + ', '.join(f'{k} {metrics[k]:.3f}' for k in found)
        print(line, flush=True)
    return 0


if __name__ == '__main__':
    sys.exit(main())
