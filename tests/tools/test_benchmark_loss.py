"""tools/analysis_tools/benchmark_loss.py --training-step times every learned
form beside the fixed family."""

import argparse
import os.path as osp
import re

import pytest
import torch
from conftest import REPO, load_tool, run_tool

TOOL = osp.join(REPO, 'tools', 'analysis_tools', 'benchmark_loss.py')


def test_training_step_prints_each_form_as_a_ratio_to_fixed():
    proc = run_tool(
        [
            TOOL,
            '--training-step',
            '--batch-size',
            '2',
            '--repeats',
            '1',
            '--rounds',
            '1',
            '--warmup',
            '1',
            '--threads',
            '1',
        ]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ratios = dict(
        re.findall(
            r'(\w+): +[0-9.]+ ms +ratio to fixed ([0-9.]+)', proc.stdout
        )
    )
    assert set(ratios) == {
        'fixed',
        'learned',
        'learned_isotropic',
        'predicted',
        'predicted_isotropic',
    }
    assert float(ratios['fixed']) == 1.0
    assert all(float(r) > 0 for r in ratios.values())


@pytest.mark.skipif(torch.cuda.is_available(), reason='refusal needs no CUDA')
def test_both_benchmarks_refuse_a_missing_cuda_device_alike():
    tool = load_tool(TOOL)
    args = argparse.Namespace(threads=0, device='cuda')
    for bench in (tool.benchmark, tool.benchmark_steps):
        with pytest.raises(SystemExit, match='no CUDA device'):
            bench(args)
    device = tool._device(argparse.Namespace(threads=0, device='cpu'))
    assert device.type == 'cpu'
