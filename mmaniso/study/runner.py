"""Train a config with ``tools/train.py``, then test it with ``tools/test.py``.

The one runner behind ``tools/demo.py`` and ``tools/misc/study.py``. Both tools
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
import hashlib
import json
import math
import os
import os.path as osp
import re
import signal
import subprocess
import sys
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Sequence,
    TextIO,
)

from mmaniso.utils.atomic_files import atomic_write_json
from mmaniso.utils.launch import LAST_CHECKPOINT

TOOLS_DIR = osp.join(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))), 'tools'
)
# Where the metrics of a run go, inside its work dir.
METRICS_FILE = 'test_metrics.json'
# What the run was made with (its fingerprint), beside the metrics.
RECORD_FILE = 'run_record.json'
# Metrics every record must hold: the study's tables read them.
REQUIRED_METRICS = ('NME',)
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
        fingerprint: What the run was made of (:func:`run_fingerprint`),
            as written to its ``run_record.json``.
    """

    metrics: Dict[str, float]
    metrics_file: str
    checkpoint: str
    seconds: float
    fingerprint: Optional[Dict[str, Any]] = None


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


class RecordError(ValueError):
    """A run's record (its metrics or its fingerprint) cannot be used."""


def _redo(path: str) -> str:
    return (
        f'delete {path} (or move it aside) and run the command that made it '
        'again: the run is then trained and tested afresh'
    )


def read_metrics(
    path: str, required: Sequence[str] = REQUIRED_METRICS
) -> Dict[str, float]:
    """The metrics of a record, checked before anything uses them.

    Args:
        path: A ``tools/test.py --metrics-out`` file.
        required: Keys it must hold.

    Returns:
        Metric name -> value.

    Raises:
        RecordError: The file is not JSON (e.g. cut off while written),
            not an object, lacks a required metric or holds a value that
            is not a finite number; the message names the file and the fix.
    """
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except UnicodeDecodeError:
        raise RecordError(
            f'{path}: not a text (UTF-8) file, so not a metrics record; '
            + _redo(path)
        ) from None
    try:
        # Same shape as datasets/checks.py's JSON read: each names its own
        # file kind and fix.
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise RecordError(
            f'{path}: not valid JSON ({e.msg} at line {e.lineno} column '
            f'{e.colno} of {len(text)} characters: the file was probably cut '
            'off while it was written); ' + _redo(path)
        ) from None
    if not isinstance(data, dict):
        raise RecordError(
            f'{path}: holds a JSON {type(data).__name__}, not the object of '
            'metrics tools/test.py --metrics-out writes; ' + _redo(path)
        )
    missing = [key for key in required if key not in data]
    if missing:
        raise RecordError(
            f'{path}: no {", ".join(map(repr, missing))} among its metrics '
            f'({", ".join(sorted(data)[:6]) or "none"}); ' + _redo(path)
        )
    for key, value in data.items():
        number = isinstance(value, (int, float)) and not isinstance(
            value, bool
        )
        if not number or not math.isfinite(value):
            raise RecordError(
                f'{path}: metric {key!r} is {value!r}, not a finite number '
                "(if the run's predictions were not finite, its log says "
                'where training went wrong); ' + _redo(path)
            )
    return {key: float(value) for key, value in data.items()}


def _file_and_bases(path: str, seen: set) -> List[str]:
    """``path`` and the local files its ``_base_`` names, recursively."""
    import ast

    path = osp.normpath(path)
    if path in seen or not osp.isfile(path):
        return []
    seen.add(path)
    found = [path]
    try:
        tree = ast.parse(open(path, encoding='utf-8').read())
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return found  # the tools will say what is wrong with it
    for node in tree.body:
        if not (
            isinstance(node, ast.Assign)
            and any(getattr(t, 'id', None) == '_base_' for t in node.targets)
        ):
            continue
        try:
            bases = ast.literal_eval(node.value)
        except ValueError:
            continue
        for base in [bases] if isinstance(bases, str) else list(bases):
            if isinstance(base, str) and '::' not in base:
                found += _file_and_bases(
                    osp.join(osp.dirname(path), base), seen
                )
    return found


def config_digest(config: str) -> Optional[str]:
    """SHA-256 of a config file's text and of the local ``_base_`` files
    it inherits (``package::`` bases, e.g. MMPose's, are not read); None
    when the file is missing."""
    files = _file_and_bases(config, set())
    if not files:
        return None
    digest = hashlib.sha256()
    for path in files:
        with open(path, 'rb') as f:
            digest.update(f.read())
    return digest.hexdigest()


def run_fingerprint(
    config: str,
    *,
    seed: Optional[int] = None,
    cfg_options: Sequence[str] = (),
    checkpoint: str = 'last',
    extra: Optional[Mapping[str, Any]] = None,
    cwd: Optional[str] = None,
) -> Dict[str, Any]:
    """What a train-then-test run is made of, as stored in its record.

    Two runs with the same fingerprint train the same config text with the
    same seed and options and test the same checkpoint, so a record may
    stand for a run only when their fingerprints are equal.

    Args:
        config: The config file, as given to the tools.
        seed: ``randomness.seed`` of the training.
        cfg_options: ``--cfg-options`` of the tools.
        checkpoint: Which checkpoint is tested.
        extra: More of what the caller knows makes a run (e.g. the noise
            model its training annotations were written with).
        cwd: The tools' working directory, which ``config`` is read from.

    Returns:
        A JSON-able dict: ``config``, ``config_sha256``
        (:func:`config_digest`), ``seed``, ``cfg_options``, ``checkpoint``
        and the items of ``extra``.
    """
    path = config if cwd is None else osp.join(cwd, config)
    fingerprint = dict(
        config=config,
        config_sha256=config_digest(path),
        seed=seed,
        cfg_options=list(cfg_options),
        checkpoint=checkpoint,
    )
    fingerprint.update(extra or {})
    return json.loads(json.dumps(fingerprint))  # as read back from a file


def read_fingerprint(folder: str) -> Optional[Dict[str, Any]]:
    """The fingerprint in ``folder``'s record, None when it has none (a
    record written before records carried one).

    Raises:
        RecordError: The fingerprint file is there but unreadable.
    """
    path = osp.join(folder, RECORD_FILE)
    if not osp.isfile(path):
        return None
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RecordError(
            f'{path}: not valid JSON ({e}); ' + _redo(path)
        ) from None
    if not isinstance(data, dict) or not isinstance(
        data.get('fingerprint'), dict
    ):
        raise RecordError(
            f'{path}: holds no "fingerprint" object; ' + _redo(path)
        )
    return data['fingerprint']


def fingerprint_differences(
    found: Mapping[str, Any], expected: Mapping[str, Any]
) -> List[str]:
    """What differs between a record's fingerprint and the one wanted, one
    line per item (options: only those in one but not the other). The
    config's path is not compared, its text is: the same text under
    another path (e.g. given absolute) trains the same run."""
    lines = []
    for key in sorted(set(found) | set(expected)):
        was, now = found.get(key), expected.get(key)
        if was == now or key == 'config':
            continue
        if isinstance(was, list) and isinstance(now, list):
            gone = [o for o in was if o not in now]
            new = [o for o in now if o not in was]
            if gone or new:
                lines.append(
                    f'{key}: record has {gone or "nothing more"}, '
                    f'wanted {new or "nothing more"}'
                )
            else:
                lines.append(f'{key}: the same items in another order')
            continue
        if key == 'config_sha256':
            lines.append('config text (or a local _base_ of it) changed')
            continue
        lines.append(f'{key}: record has {was!r}, wanted {now!r}')
    return lines


@dataclass(frozen=True)
class FoundRecord:
    """What :func:`find_record` found in a run's folder.

    Attributes:
        metrics: The record's metrics when it may stand for the wanted run;
            None when there is no record or it may not.
        problem: Why a record that is there may not stand for the run
            ('' otherwise).
        legacy: The record has no fingerprint (written before records
            carried one).
    """

    metrics: Optional[Dict[str, float]]
    problem: str = ''
    legacy: bool = False


def find_record(
    folder: str, expected: Mapping[str, Any], accept_legacy: bool
) -> FoundRecord:
    """Whether ``folder`` holds a finished run made with ``expected``.

    A record is ``test_metrics.json`` (checked by :func:`read_metrics`) and
    ``run_record.json`` (its fingerprint). It stands for the run when the
    fingerprints are equal. A record without a fingerprint (legacy) stands
    for it only when ``accept_legacy``: its options cannot be checked, so a
    caller accepts it only for the options it itself gave such runs before
    records carried fingerprints.

    Args:
        folder: The run's work dir.
        expected: :func:`run_fingerprint` of the wanted run.
        accept_legacy: Let a record without a fingerprint stand for it.

    Returns:
        A :class:`FoundRecord`.
    """
    metrics_file = osp.join(folder, METRICS_FILE)
    if not osp.isfile(metrics_file):
        return FoundRecord(None)
    try:
        metrics = read_metrics(metrics_file)
        found = read_fingerprint(folder)
    except RecordError as e:
        return FoundRecord(None, str(e))
    if found is None:
        if accept_legacy:
            return FoundRecord(metrics, legacy=True)
        return FoundRecord(
            None,
            f'{metrics_file} has no fingerprint ({RECORD_FILE}: written '
            'before records carried one, or cut off before it was '
            'written), so the options it was made with cannot be checked '
            'against the ones given now',
            legacy=True,
        )
    differences = fingerprint_differences(found, expected)
    if differences:
        return FoundRecord(
            None,
            f'{metrics_file} was made with other settings than the ones '
            f'given now ({"; ".join(differences)})',
        )
    return FoundRecord(metrics)


def move_record_aside(folder: str) -> Optional[str]:
    """Moves a run's record (metrics and fingerprint) into
    ``<folder>/previous_<timestamp>/`` (never deleted); returns that
    folder, None when there was nothing to move."""
    names = [
        n
        for n in (METRICS_FILE, RECORD_FILE)
        if osp.exists(osp.join(folder, n))
    ]
    if not names:
        return None
    stamp = time.strftime('%Y%m%d_%H%M%S')
    target = osp.join(folder, f'previous_{stamp}')
    suffix = 1
    while osp.exists(target):
        target = osp.join(folder, f'previous_{stamp}_{suffix}')
        suffix += 1
    os.makedirs(target)
    for name in names:
        os.replace(osp.join(folder, name), osp.join(target, name))
    return target


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
    record_extra: Optional[Mapping[str, Any]] = None,
) -> TrainTestResult:
    """Trains ``config`` afresh in ``work_dir``, then tests its checkpoint.

    Training is given ``--overwrite``: checkpoints of an earlier or
    interrupted run in ``work_dir`` are moved aside into
    ``<work_dir>/previous_<timestamp>/``, not mixed in. The test writes its
    metrics to ``<work_dir>/test_metrics.json``; they are checked
    (:func:`read_metrics`) and the run's fingerprint
    (:func:`run_fingerprint`) is written beside them as
    ``run_record.json``, the two together being the run's record.

    A SIGTERM or SIGINT to this process, once :func:`forward_signals` is
    installed (it is, when called from the main thread), is passed on to
    the running tool and its workers, and :class:`RunInterrupted` is
    raised when they have ended.

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
        record_extra: Items added to the run's fingerprint.

    Returns:
        The metrics, the tested checkpoint and the time taken.

    Raises:
        RuntimeError: A tool exited with an error; the message holds the end
            of ``log_file`` when there is one.
        RecordError: The metrics the test wrote are not a valid record.
        RunInterrupted: A signal stopped the run.
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

    forward_signals()
    fingerprint = run_fingerprint(
        config,
        seed=seed,
        cfg_options=cfg_options,
        checkpoint=checkpoint,
        extra=record_extra,
        cwd=cwd,
    )
    # The fingerprint of a run about to be replaced must not outlive it
    # beside the new run's metrics.
    record_file = resolve(osp.join(work_dir, RECORD_FILE))
    if osp.isfile(record_file):
        os.remove(record_file)
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
    metrics = read_metrics(resolve(metrics_file))
    atomic_write_json(record_file, dict(fingerprint=fingerprint))
    return TrainTestResult(
        metrics=metrics,
        metrics_file=metrics_file,
        checkpoint=ckpt,
        seconds=seconds,
        fingerprint=fingerprint,
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


# ------------------------------------------------------------- signals
# The tools running now (Popen -> started in a process group of its own),
# and the signal that stops everything, once one came.
_children: Dict[subprocess.Popen, bool] = {}
_stopping: Optional[int] = None
_forwarding = False
# Seconds a tool has to end after the signal before it is killed.
KILL_AFTER_S = 30.0


class RunInterrupted(RuntimeError):
    """A SIGTERM or SIGINT stopped the runs, and the tools they ran.

    Attributes:
        signum: The signal.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(
            f'stopped by {signal.Signals(signum).name}; the tools it was '
            'running were stopped too'
        )


def forward_signals() -> bool:
    """Passes SIGTERM and SIGINT on to the tools the runner runs.

    Installs handlers (only the main thread can; the tools call it at
    start, before their threads) that send the signal to the process group
    of every running tool (its data workers included), kill any still
    alive :data:`KILL_AFTER_S` later, and make every runner thread raise
    :class:`RunInterrupted` as its tool ends, starting no other. With no
    tool running, the handler raises :class:`RunInterrupted` at once. Tools
    started while it is installed get a process group of their own, so
    that a terminal's Ctrl-C reaches them through the runner only.

    Returns:
        Whether the handlers are installed (False off the main thread).
    """
    global _forwarding
    if threading.current_thread() is not threading.main_thread():
        return _forwarding
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _on_signal)
    _forwarding = True
    return True


def _signal_group(proc: subprocess.Popen, signum: int) -> None:
    try:
        if _children.get(proc):
            os.killpg(proc.pid, signum)
        else:
            proc.send_signal(signum)
    except (ProcessLookupError, PermissionError):
        pass  # it has ended


def _kill_remaining() -> None:
    for proc in list(_children):
        if proc.poll() is None:
            _signal_group(proc, signal.SIGKILL)


def _on_signal(signum: int, frame) -> None:
    global _stopping
    _stopping = signum
    # poll() never blocks: a thread waiting on the tool keeps its lock.
    live = [p for p in list(_children) if p.poll() is None]
    for proc in live:
        _signal_group(proc, signum)
    if not live:
        raise RunInterrupted(signum)
    timer = threading.Timer(KILL_AFTER_S, _kill_remaining)
    timer.daemon = True
    timer.start()
    # The threads waiting on the tools raise RunInterrupted as they end.


def _stop(proc: subprocess.Popen) -> None:
    """Ends a tool this process will not wait for any more."""
    if proc.poll() is None:
        _signal_group(proc, signal.SIGTERM)
        try:
            proc.wait(KILL_AFTER_S)
        except subprocess.TimeoutExpired:
            _signal_group(proc, signal.SIGKILL)
            proc.wait()


def _run(
    stage: str,
    cmd: list,
    env: dict,
    cwd: Optional[str],
    log: Optional[TextIO],
    echo: Optional[Callable[[str], None]],
    progress: Optional[Callable[[TrainProgress], None]] = None,
) -> None:
    if _stopping is not None:
        raise RunInterrupted(_stopping)
    if echo is not None:
        echo('$ ' + ' '.join(cmd))
    output = {}
    if log is not None:
        log.flush()
        pipe = progress is not None
        output = dict(
            stdout=subprocess.PIPE if pipe else log,
            stderr=subprocess.STDOUT,
        )
        if pipe:
            output.update(text=True, errors='replace')
    grouped = _forwarding
    proc = subprocess.Popen(
        cmd, env=env, cwd=cwd, start_new_session=grouped, **output
    )
    _children[proc] = grouped
    try:
        if _stopping is not None:  # the signal came while it started
            _signal_group(proc, _stopping)
        if proc.stdout is not None:
            for line in proc.stdout:
                log.write(line)
                found = parse_train_line(line)
                if found is not None:
                    log.flush()
                    progress(found)
            proc.stdout.close()
        code = proc.wait()
    except BaseException:
        _stop(proc)
        raise
    finally:
        _children.pop(proc, None)
    if _stopping is not None:
        raise RunInterrupted(_stopping)
    if code == 0:
        return
    if log is None:
        raise RuntimeError(
            f'{stage} failed with exit code {code} (its output is '
            f'above): {" ".join(cmd)}'
        )
    log.flush()
    with open(log.name) as f:
        tail = f.read()[-3000:]
    raise RuntimeError(
        f'{stage} failed with exit code {code}; the end of {log.name}:\n{tail}'
    )
