"""Smoke test of tools/analysis_tools/benchmark_feed.py (and benchmark.py's
``--only feed``)."""

import json
import os.path as osp
import re

from conftest import REPO, run_tool

SCRIPT = osp.join(REPO, 'tools', 'analysis_tools', 'benchmark_feed.py')
PATHS = (
    'MMPose pipeline, photographs',
    'MMPose pipeline, crop cache',
    'device feed CPU side, decode crops',
    'device feed CPU side, memory-mapped array',
)


def test_prints_four_rates_the_augmentation_and_the_speed_up(tmp_path):
    # A folder not made yet: the figures are written whole, folder and all.
    # Run as test_benchmark_crop_cache.py runs its tool: each test drives
    # its own script.
    out = tmp_path / 'results' / 'figures.json'
    proc = run_tool(
        [
            SCRIPT,
            '--images',
            '4',
            '--rounds',
            '1',
            '--batch-size',
            '4',
            '--aug-rounds',
            '1',
            '--long-side',
            '300',
            '--face-px',
            '60',
            '100',
            '--max-size',
            '128',
            '--out-json',
            out,
        ],
        timeout=1800,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rates = {}
    for label in PATHS:
        m = re.search(rf'^{label} +([0-9.]+) ', proc.stdout, re.M)
        assert m, (label, proc.stdout)
        rates[label] = float(m.group(1))
    assert re.search(r'batch 4 of \d+ px crops -> 256x256, cpu', proc.stdout)
    assert re.search(r'[0-9.]+ ms/batch', proc.stdout)
    speedup = float(
        re.search(
            r"([0-9.]+)x MMPose's pipeline on photographs", proc.stdout
        ).group(1)
    )
    best = max(rates[PATHS[2]], rates[PATHS[3]])
    assert abs(speedup - best / rates[PATHS[0]]) < 0.05 * speedup + 0.1
    figures = json.loads(out.read_text())
    assert set(figures['median']) == {
        'mmpose_photos',
        'mmpose_cache',
        'feed_decode',
        'feed_array',
    }
    assert figures['augment_ms_per_batch'] > 0


def test_benchmark_lists_the_feed():
    proc = run_tool(
        [osp.join(REPO, 'tools', 'analysis_tools', 'benchmark.py'), '--help']
    )
    assert proc.returncode == 0 and 'feed' in proc.stdout
