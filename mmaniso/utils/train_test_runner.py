"""Train a config with ``tools/train.py``, then test it with ``tools/test.py``.

The one runner behind ``tools/demo.py`` and ``tools/study.py``. Both tools
run as child processes, as a user would type them, so every run starts in a
fresh interpreter (and on a fresh device) and its output can go to a log file
of its own. The tools are those of the source checkout this package is
installed from (``pip install -e .``).

Example:
    >>> result = train_then_test(  # doctest: +SKIP
    ...     'configs/fixture/res18_wflw_fixture.py', 'work_dirs/run0',
    ...     seed=0, cfg_options=['train_cfg.max_epochs=1'])
    >>> result.metrics['NME'], result.seconds  # doctest: +SKIP
"""

import glob
import json
import os
import os.path as osp
import re
import subprocess
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Dict, Mapping, Optional, Sequence, TextIO

from .launch import LAST_CHECKPOINT

TOOLS_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools'
)
# Where the metrics of a run go, inside its work dir.
METRICS_FILE = 'test_metrics.json'
CHECKPOINT_CHOICES = ('best', 'last')


@dataclass(frozen=True)
class TrainTestResult:
    """What one train-then-test run produced.

    Attributes:
        metrics: The test metrics, as ``tools/test.py --metrics-out`` wrote
            them (e.g. ``NME``, ``FR@0.1``, ``blur/NME``).
        metrics_file: The JSON file they were read from.
        checkpoint: The tested checkpoint.
        seconds: Wall time of training and testing together.
    """

    metrics: Dict[str, float]
    metrics_file: str
    checkpoint: str
    seconds: float


def find_checkpoint(work_dir: str, which: str = 'last') -> str:
    """The checkpoint of a finished training run.

    Args:
        work_dir: The run's work dir.
        which: ``'last'``: the one MMEngine's ``last_checkpoint`` names;
            ``'best'``: the newest ``best_*.pth`` saved by
            ``CheckpointHook(save_best=...)``, else the last.

    Returns:
        The path of the checkpoint file.
    """
    if which not in CHECKPOINT_CHOICES:
        raise ValueError(
            f'which must be one of {CHECKPOINT_CHOICES}, got {which!r}'
        )
    if which == 'best':
        best = sorted(glob.glob(osp.join(work_dir, 'best_*.pth')))
        if best:
            return best[-1]
    pointer = osp.join(work_dir, LAST_CHECKPOINT)
    if osp.isfile(pointer):
        with open(pointer) as f:
            path = f.read().strip()
        if osp.isfile(path):
            return path
    raise FileNotFoundError(
        f'no {which} checkpoint in {work_dir}; did its training finish? '
        f'See {work_dir}/*/*.log'
    )


def thread_env(jobs: int, cpus: Optional[int] = None) -> Dict[str, str]:
    """Environment giving each of ``jobs`` runs sharing the CPU its share of
    the cores.

    Without it every run's OpenMP pool spins on all cores and the runs (and
    their data-loading workers) slow each other down far more than the
    split costs.

    Args:
        jobs: How many runs go at once.
        cpus: The cores to share; ``os.cpu_count()`` when None.

    Returns:
        ``OMP_NUM_THREADS`` and ``MKL_NUM_THREADS``, at least 1 each.
    """
    if jobs < 1:
        raise ValueError(f'jobs must be at least 1, got {jobs}')
    cpus = cpus if cpus is not None else (os.cpu_count() or 1)
    threads = str(max(1, cpus // jobs))
    return {'OMP_NUM_THREADS': threads, 'MKL_NUM_THREADS': threads}


def train_then_test(
    config: str,
    work_dir: str,
    *,
    seed: Optional[int] = None,
    cfg_options: Sequence[str] = (),
    checkpoint: str = 'last',
    predictions_file: Optional[str] = None,
    overwrite_results: bool = False,
    env: Optional[Mapping[str, str]] = None,
    cwd: Optional[str] = None,
    log_file: Optional[str] = None,
    echo: Optional[Callable[[str], None]] = None,
    progress: Optional[Callable[['TrainProgress'], None]] = None,
    tools_dir: str = TOOLS_DIR,
) -> TrainTestResult:
    """Trains ``config`` afresh in ``work_dir``, then tests its checkpoint.

    Training is given ``--overwrite``: checkpoints of an earlier or
    interrupted run in ``work_dir`` are moved aside into
    ``<work_dir>/previous_<timestamp>/``, not mixed in. The test writes its
    metrics to ``<work_dir>/test_metrics.json``.

    Args:
        config: The config file.
        work_dir: The run's work dir (``--work-dir`` of both tools).
        seed: ``randomness.seed`` of the training; the config's when None.
        cfg_options: ``--cfg-options`` of both tools.
        checkpoint: Which checkpoint to test, see :func:`find_checkpoint`.
        predictions_file: Where the test dumps its predictions (``--out``),
            if anywhere.
        overwrite_results: Let the test replace existing result files
            (``tools/test.py --overwrite``).
        env: Environment variables set for both tools, over this process's
            (e.g. ``CUDA_VISIBLE_DEVICES``).
        cwd: Working directory of both tools, which relative paths (config,
            work dir, files) are read from; this process's when None.
        log_file: Both tools' output goes to this file; to this process's
            stdout and stderr when None.
        echo: Called with each command line before it runs.
        progress: With ``log_file``, called with a :class:`TrainProgress`
            for each training line MMEngine logs, as it is logged (the
            lines themselves go to the log file only).
        tools_dir: The folder holding ``train.py`` and ``test.py``.

    Returns:
        The metrics, the tested checkpoint and the time taken.

    Raises:
        RuntimeError: A tool exited with an error; the message holds the end
            of ``log_file`` when there is one.
    """
    if checkpoint not in CHECKPOINT_CHOICES:
        raise ValueError(
            f'checkpoint must be one of {CHECKPOINT_CHOICES}, got '
            f'{checkpoint!r}'
        )
    scripts = {}
    for name in ('train', 'test'):
        scripts[name] = osp.join(tools_dir, f'{name}.py')
        if not osp.isfile(scripts[name]):
            raise FileNotFoundError(
                f'{scripts[name]} not found: the runner calls the tools of a '
                'source checkout; install mmaniso from one with '
                '`pip install -e .` or pass tools_dir'
            )

    def resolve(path: str) -> str:
        # The tools resolve relative paths against cwd; so must this one.
        return path if cwd is None else osp.join(cwd, path)

    metrics_file = osp.join(work_dir, METRICS_FILE)
    train_options = list(cfg_options)
    if seed is not None:
        train_options.insert(0, f'randomness.seed={seed}')
    train_cmd = [
        sys.executable,
        scripts['train'],
        config,
        '--work-dir',
        work_dir,
        '--overwrite',
    ] + _with_cfg_options(train_options)
    child_env = dict(os.environ)
    child_env.update(env or {})
    log_path = None
    if log_file is not None:
        log_path = resolve(log_file)
        os.makedirs(osp.dirname(osp.abspath(log_path)), exist_ok=True)

    start = time.time()
    with open(log_path, 'w') if log_path else nullcontext() as log:
        _run('training', train_cmd, child_env, cwd, log, echo, progress)
        ckpt = find_checkpoint(resolve(work_dir), checkpoint)
        test_cmd = [
            sys.executable,
            scripts['test'],
            config,
            ckpt,
            '--work-dir',
            work_dir,
            '--metrics-out',
            metrics_file,
        ]
        if predictions_file is not None:
            test_cmd += ['--out', predictions_file]
        if overwrite_results:
            test_cmd.append('--overwrite')
        test_cmd += _with_cfg_options(cfg_options)
        _run('testing', test_cmd, child_env, cwd, log, echo)
    seconds = time.time() - start
    with open(resolve(metrics_file)) as f:
        metrics = json.load(f)
    return TrainTestResult(
        metrics=metrics,
        metrics_file=metrics_file,
        checkpoint=ckpt,
        seconds=seconds,
    )


def _with_cfg_options(options: Sequence[str]) -> list:
    # --cfg-options takes one or more values: leave it out when there are
    # none, and keep it last on the command line.
    return ['--cfg-options', *options] if options else []


@dataclass(frozen=True)
class TrainProgress:
    """Where a training run is, from one line of MMEngine's log."""

    epoch: int
    iteration: int
    iterations: int
    loss: float
    eta: str


# MMEngine's training line, e.g. "Epoch(train)  [3][40/63]  lr: ...  eta:
# 0:02:10  time: ...  loss: 0.0312 ..."
_TRAIN_LINE = re.compile(
    r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\].*?eta: (\S+).*?'
    r'\bloss: ([-+0-9.eE]+|nan|inf)'
)


def parse_train_line(line: str) -> Optional[TrainProgress]:
    """The progress in one log line, None for any other line."""
    match = _TRAIN_LINE.search(line)
    if match is None:
        return None
    epoch, it, total, eta, loss = match.groups()
    return TrainProgress(int(epoch), int(it), int(total), float(loss), eta)


class ProgressLine:
    """One line per training run, for :func:`train_then_test`'s
    ``progress``: rewritten in place on a terminal, else printed at the
    first and every fifth epoch (one line per epoch when ``every=1``).

    Args:
        label: What the line starts with, e.g. ``'[demo] aniso'``.
        every: Print every this many epochs when not on a terminal.
        tty: Rewrite one line in place; by default when stdout is a
            terminal. Runs going in parallel should pass False.
    """

    def __init__(
        self, label: str, every: int = 5, tty: Optional[bool] = None
    ) -> None:
        self.label = label
        self.every = max(1, int(every))
        self.tty = sys.stdout.isatty() if tty is None else tty
        self.last: Optional[TrainProgress] = None
        self.printed_epoch = 0

    def text(self, p: TrainProgress) -> str:
        return (
            f'{self.label}: epoch {p.epoch} iter {p.iteration}/'
            f'{p.iterations} loss {p.loss:.4f} eta {p.eta}'
        )

    def __call__(self, p: TrainProgress) -> None:
        self.last = p
        if self.tty:
            print('\r' + self.text(p).ljust(78), end='', flush=True)
        elif p.epoch != self.printed_epoch and (
            p.epoch == 1 or p.epoch % self.every == 0
        ):
            self.printed_epoch = p.epoch
            print(self.text(p), flush=True)

    def close(self) -> None:
        if self.tty:
            print(flush=True)


def _run(
    stage: str,
    cmd: list,
    env: dict,
    cwd: Optional[str],
    log: Optional[TextIO],
    echo: Optional[Callable[[str], None]],
    progress: Optional[Callable[[TrainProgress], None]] = None,
) -> None:
    if echo is not None:
        echo('$ ' + ' '.join(cmd))
    if log is None:
        code = subprocess.run(cmd, env=env, cwd=cwd).returncode
        if code != 0:
            raise RuntimeError(
                f'{stage} failed with exit code {code} (its output is '
                f'above): {" ".join(cmd)}'
            )
        return
    log.flush()
    if progress is None:
        code = subprocess.run(
            cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
        ).returncode
    else:
        with subprocess.Popen(
            cmd,
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors='replace',
        ) as proc:
            for line in proc.stdout:
                log.write(line)
                found = parse_train_line(line)
                if found is not None:
                    log.flush()
                    progress(found)
            code = proc.wait()
    if code != 0:
        log.flush()
        with open(log.name) as f:
            tail = f.read()[-3000:]
        raise RuntimeError(
            f'{stage} failed with exit code {code}; the end of '
            f'{log.name}:\n{tail}'
        )
