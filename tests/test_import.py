"""``import mmaniso`` registers the components and loads nothing else."""

import json
import subprocess
import sys

# What a config's ``custom_imports=dict(imports=['mmaniso'])`` must not load:
# the demo data's renderer and writer (OpenCV drawing), the evidence
# harness, the converters of the official downloads, the test helpers and
# hooks, and the ONNX export.
NOT_ON_IMPORT = (
    'mmaniso.synthface',
    'mmaniso.study',
    'mmaniso.datasets.converters',
    'mmaniso.testing',
    'mmaniso.deploy',
)
# Wherever they live: the renderer, the face templates and the fixture
# writer draw with OpenCV and are demo or test data.
NOT_ON_IMPORT_ANYWHERE = ('synthface', 'face_template', 'fixture')

_REPORT = """
import json, sys
import mmaniso
from mmpose.registry import DATA_SAMPLERS, DATASETS, HOOKS, METRICS, MODELS
print(json.dumps(dict(
    modules=sorted(m for m in sys.modules if m.startswith('mmaniso')),
    onnx=sorted(m for m in sys.modules if m.split('.')[0].startswith('onnx')),
    registered={
        name: name in registry.module_dict
        for registry, name in [
            (MODELS, 'AnisotropicLoss'),
            (MODELS, 'MeanShapeRegressionHead'),
            (MODELS, 'TopdownBatchAugment'),
            (MODELS, 'BatchAugmentDataPreprocessor'),
            (DATASETS, 'CropFeedDataset'),
            (DATA_SAMPLERS, 'PoseBalancedSampler'),
            (METRICS, 'FaceLandmarkMetric'),
            (HOOKS, 'PoseBalancingHook'),
            (HOOKS, 'EpochIndicesHook'),
            (HOOKS, 'RankDumpHook'),
        ]
    },
)))
"""

# The same report for MMPose's own registration, without mmaniso.
_BASELINE = """
import json, sys
from mmpose.utils import register_all_modules
register_all_modules()
print(json.dumps(dict(
    onnx=sorted(m for m in sys.modules if m.split('.')[0].startswith('onnx')),
)))
"""


def _fresh_import(code: str) -> dict:
    """Runs ``code`` in a fresh interpreter; returns its JSON report."""
    proc = subprocess.run(
        [sys.executable, '-c', code],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_import_mmaniso_registers_components_only():
    report = _fresh_import(_REPORT)
    loaded = [
        name
        for name in report['modules']
        if any(
            name == banned or name.startswith(banned + '.')
            for banned in NOT_ON_IMPORT
        )
        or any(part in name for part in NOT_ON_IMPORT_ANYWHERE)
    ]
    assert not loaded, f'import mmaniso loads {loaded}'
    # The deploy extra (onnx, onnxruntime, onnxscript, onnx_ir): training
    # and testing need none of it, and it may not be installed. What MMPose
    # and its stack load by themselves is not mmaniso's doing (torchvision
    # 0.16 imports torch.onnx, which on torch 2.1 imports onnx and
    # onnxscript when they are installed).
    baseline = _fresh_import(_BASELINE)['onnx']
    added = sorted(set(report['onnx']) - set(baseline))
    assert not added, f'import mmaniso loads {added}'
    assert report['registered'] == {
        'AnisotropicLoss': True,
        'MeanShapeRegressionHead': True,
        'TopdownBatchAugment': True,
        'BatchAugmentDataPreprocessor': True,
        'CropFeedDataset': True,
        'PoseBalancedSampler': True,
        'FaceLandmarkMetric': True,
        'PoseBalancingHook': True,
        # The test hooks register only when a config imports them.
        'EpochIndicesHook': False,
        'RankDumpHook': False,
    }


def test_test_hooks_register_when_imported():
    report = _fresh_import(
        _REPORT.replace('import mmaniso\n', 'import mmaniso.testing.hooks\n')
    )
    assert report['registered']['EpochIndicesHook']
    assert report['registered']['RankDumpHook']
    assert 'mmaniso.testing.hooks' in report['modules']
