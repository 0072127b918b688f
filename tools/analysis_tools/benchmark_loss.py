"""Time forward + backward of AnisotropicLoss against MMPose's SoftWingLoss.

    python tools/analysis_tools/benchmark_loss.py [--device cpu|cuda]
        [--batch-size 64] [--point-types wflw] [--repeats 200]
        [--warmup 20] [--rounds 5] [--distance squared|mahalanobis]
    python tools/analysis_tools/benchmark_loss.py --training-step [--config C]
        [--device cpu|cuda] [--batch-size 64] [--repeats 5] [--rounds 5]

``--training-step`` times whole training steps (backbone and head forward,
loss, backward, Adam step) of the config's model with the fixed family's
loss and with each learned form (``scales='learned'``,
``'learned_isotropic'``, and the head's predicted scales, anisotropic and
isotropic) on the same random batch, round by round in turn, and prints
each form's time beside the fixed one as a ratio.

Both losses see the same random prediction (requiring grad), target and
target weight of shape (B, K, 2) and (B, K, 1), as MMPose's RegressionHead
passes them. Each timed call is one forward and one backward; the median
over ``--rounds`` rounds of ``--repeats`` calls is printed for each loss,
with the ratio aniso / softwing. The losses alternate round by round, so
slow drifts of the machine hit both alike. On a CPU shared with other
work, ``--threads 1`` gives steadier figures: at these sizes (B * K * 2 =
12,544 numbers) intra-op threads that wait for a busy core dominate.
"""

import argparse
import statistics
import time
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cpu', help='cpu or cuda[:i]')
    parser.add_argument('--batch-size', type=int, default=64)
    parser.add_argument(
        '--point-types', default='wflw', help='dataset name of the layout'
    )
    parser.add_argument(
        '--distance', default='squared', choices=['squared', 'mahalanobis']
    )
    parser.add_argument(
        '--repeats', type=int, default=200, help='calls per timed round'
    )
    parser.add_argument(
        '--warmup', type=int, default=20, help='untimed calls per loss'
    )
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument(
        '--threads', type=int, default=0, help='torch CPU threads (0: keep)'
    )
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument(
        '--training-step',
        action='store_true',
        help='time training steps of each learned-scale form vs fixed',
    )
    parser.add_argument(
        '--config',
        default='configs/synthface/res18_aniso-normalised-l1-nobalance_'
        'synthface.py',
        help='the model of --training-step (its head: MeanShape..., '
        'AnisotropicLoss)',
    )
    return parser.parse_args(argv)


# The learned forms against the fixed family, as head overrides.
STEP_FORMS = {
    'fixed': dict(),
    'learned': dict(loss=dict(scales='learned')),
    'learned_isotropic': dict(loss=dict(scales='learned_isotropic')),
    'predicted': dict(
        predict_scales='anisotropic', loss=dict(scales='predicted')
    ),
    'predicted_isotropic': dict(
        predict_scales='isotropic', loss=dict(scales='predicted')
    ),
}


def _build_step_models(args, device):
    """One model per form, same initial weights, and a training batch."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.structures import InstanceData
    from mmpose.registry import MODELS
    from mmpose.structures import PoseDataSample

    import mmaniso  # noqa: F401  (registers)
    from mmaniso.synthface.face_template import mean_face

    cfg = Config.fromfile(args.config)
    init_default_scope('mmpose')
    cfg.model.backbone.init_cfg = None
    codec = cfg.model.head.decoder
    width, height = codec['input_size']
    num = cfg.model.head.num_joints
    face = torch.as_tensor(mean_face(num) * 0.3 + 0.5, dtype=torch.float32)
    models = {}
    for name, override in STEP_FORMS.items():
        model_cfg = cfg.model.copy()
        head = dict(model_cfg.head)
        loss = dict(head['loss'])
        loss.update(override.get('loss', {}))
        head.update({k: v for k, v in override.items() if k != 'loss'})
        head['loss'] = loss
        head['mean_shape'] = face.tolist()
        model_cfg.head = head
        torch.manual_seed(args.seed)
        model = MODELS.build(model_cfg).to(device).train()
        optim = torch.optim.Adam(model.parameters(), lr=1e-4)
        models[name] = (model, optim)
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.randn(args.batch_size, 3, height, width, generator=gen)
    samples = []
    for _ in range(args.batch_size):
        sample = PoseDataSample(metainfo=dict(input_size=(width, height)))
        labels = face + 0.02 * torch.randn(num, 2, generator=gen)
        sample.gt_instance_labels = InstanceData(
            keypoint_labels=labels[None].to(device),
            keypoint_weights=torch.ones(1, num, device=device),
        )
        samples.append(sample)
    return models, images.to(device), samples


def _train_step(model, optim, images, samples) -> None:
    optim.zero_grad(set_to_none=True)
    losses = model.loss(images, samples)
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    optim.step()


def _device(args: argparse.Namespace) -> torch.device:
    """Applies ``--threads`` and returns ``--device``; refuses a CUDA device
    where there is none."""
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise SystemExit('--device cuda: no CUDA device is available here')
    return device


def benchmark_steps(args: argparse.Namespace) -> Dict[str, float]:
    """Median seconds per training step of each form (``STEP_FORMS``)."""
    device = _device(args)
    models, images, samples = _build_step_models(args, device)
    sync = torch.cuda.synchronize if device.type == 'cuda' else None
    for model, optim in models.values():
        for _ in range(args.warmup):
            _train_step(model, optim, images, samples)
    times = {name: [] for name in models}
    for _ in range(args.rounds):
        for name, (model, optim) in models.items():
            if sync:
                sync(device)
            start = time.perf_counter()
            for _ in range(args.repeats):
                _train_step(model, optim, images, samples)
            if sync:
                sync(device)
            times[name].append((time.perf_counter() - start) / args.repeats)
    return {name: statistics.median(t) for name, t in times.items()}


def _step(
    loss_fn: Callable, output: Tensor, target: Tensor, weight: Tensor
) -> None:
    output.grad = None
    loss_fn(output, target, weight).backward()


def _time_round(
    loss_fn: Callable,
    output: Tensor,
    target: Tensor,
    weight: Tensor,
    repeats: int,
    device: torch.device,
) -> float:
    """Seconds per forward + backward, averaged over ``repeats`` calls."""
    sync = torch.cuda.synchronize if device.type == 'cuda' else None
    if sync:
        sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        _step(loss_fn, output, target, weight)
    if sync:
        sync(device)
    return (time.perf_counter() - start) / repeats


def benchmark(args: argparse.Namespace) -> Dict[str, float]:
    """Times both losses; returns median seconds per call of each."""
    from mmpose.models.losses import SoftWingLoss

    from mmaniso.datasets.point_types import get_point_types
    from mmaniso.models.losses import AnisotropicLoss

    device = _device(args)
    num_keypoints = get_point_types(args.point_types).num_keypoints
    gen = torch.Generator().manual_seed(args.seed)
    shape = (args.batch_size, num_keypoints, 2)
    target = torch.rand(shape, generator=gen).to(device)
    output = (target + 0.05 * torch.randn(shape, generator=gen)).to(device)
    output.requires_grad_(True)
    weight = (torch.rand(shape[:2] + (1,), generator=gen) > 0.05).float()
    weight = weight.to(device)
    losses = dict(
        aniso=AnisotropicLoss(
            args.point_types,
            distance=args.distance,
            use_target_weight=True,
        ).to(device),
        softwing=SoftWingLoss(use_target_weight=True).to(device),
    )
    for fn in losses.values():
        for _ in range(args.warmup):
            _step(fn, output, target, weight)
    times = {name: [] for name in losses}
    for _ in range(args.rounds):
        for name, fn in losses.items():
            times[name].append(
                _time_round(fn, output, target, weight, args.repeats, device)
            )
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: Optional[List[str]] = None) -> Dict[str, float]:
    args = parse_args(argv)
    if args.training_step:
        result = benchmark_steps(args)
        print(
            f'training step, {args.config}, B={args.batch_size}, device '
            f'{args.device}, torch {torch.__version__}, '
            f'{torch.get_num_threads()} CPU threads, median of '
            f'{args.rounds} rounds x {args.repeats} steps'
        )
        fixed = result['fixed']
        for name, seconds in result.items():
            print(
                f'{name:>20}: {seconds * 1e3:9.2f} ms  ratio to fixed '
                f'{seconds / fixed:.3f}'
            )
        return result
    result = benchmark(args)
    aniso, softwing = result['aniso'], result['softwing']
    print(
        f'forward+backward, B={args.batch_size}, point types '
        f'{args.point_types!r}, device {args.device}, torch '
        f'{torch.__version__}, {torch.get_num_threads()} CPU threads, '
        f'median of {args.rounds} rounds x {args.repeats} calls'
    )
    print(f'AnisotropicLoss ({args.distance}): {aniso * 1e6:9.1f} us')
    print(f'SoftWingLoss:                {softwing * 1e6:9.1f} us')
    print(f'ratio aniso/softwing: {aniso / softwing:.2f}')
    return result


if __name__ == '__main__':
    main()
