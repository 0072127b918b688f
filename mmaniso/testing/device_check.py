"""mmaniso's maths on an accelerator against the same maths on the CPU.

    python -m mmaniso.testing.device_check --device cuda [--checkpoint CKPT]

One line per check, ``name | ok/FAIL | figure``, and exit code 1 if any
failed; tools/misc/gpu_check.sh runs it. With ``--device cpu`` the
reference and the check run on the same device: it then only shows that the
code path runs (as the test suite does on machines without a GPU).

- loss: every ``AnisotropicLoss`` form, forward and backward, on the device
  vs the CPU, in float32 and under autocast (float16 on CUDA);
- pose bins: Procrustes, PCA and bins of the pose balancing computed from
  device tensors vs CPU tensors (the same bins, the same mean shape);
- mean shape: the ``head.mean_shape`` that ``PoseBalancingHook`` filled in a
  checkpoint trained on the device: finite, in the crop, not constant.
"""

import argparse
import sys
from typing import List, Tuple

import torch

Result = Tuple[str, bool, str]

_FORMS = (
    dict(distance='squared', weighting='paper'),
    dict(distance='mahalanobis', weighting='paper'),
    dict(distance='mahalanobis', weighting='normalised'),
    dict(distance='softwing', weighting='normalised'),
    dict(distance='wing', weighting='normalised'),
)


def _shapes(n: int = 64, seed: int = 0) -> torch.Tensor:
    from mmaniso.synthface.face_template import wflw_mean_face

    g = torch.Generator().manual_seed(seed)
    mean = torch.as_tensor(wflw_mean_face(), dtype=torch.float32)  # (98, 2)
    angle = torch.rand(n, generator=g) * 1.2 - 0.6
    cos, sin = torch.cos(angle), torch.sin(angle)
    rot = torch.stack(
        [torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2
    )
    shapes = mean[None] @ rot.transpose(1, 2)  # (n, 98, 2)
    return shapes + 0.01 * torch.randn(shapes.shape, generator=g)


def check_loss(device: str) -> List[Result]:
    from mmaniso.models.losses import AnisotropicLoss

    results = []
    g = torch.Generator().manual_seed(0)
    target = _shapes(16) * 0.3 + 0.5  # (16, 98, 2), in [0, 1]
    pred = target + 0.02 * torch.randn(target.shape, generator=g)
    weight = torch.ones(16, 98)
    for form in _FORMS:
        name = f'loss {form["weighting"]} {form["distance"]}'
        values, grads = {}, {}
        for where in ('cpu', device):
            loss = AnisotropicLoss(
                'wflw', input_size=(256, 256), use_target_weight=True, **form
            )
            p = pred.clone().to(where).requires_grad_(True)
            value = loss(p, target.to(where), weight.to(where))
            value.backward()
            values[where], grads[where] = value.detach().cpu(), p.grad.cpu()
        rel = float(
            (values[device] - values['cpu']).abs() / values['cpu'].abs()
        )
        grad = float(
            (grads[device] - grads['cpu']).abs().max()
            / grads['cpu'].abs().max()
        )
        ok = rel < 1e-4 and grad < 1e-3
        results.append(
            (name, ok, f'rel. diff value {rel:.1e}, grad {grad:.1e}')
        )
        # Under autocast the head's output is float16 on CUDA.
        if device.startswith('cuda'):
            loss = AnisotropicLoss(
                'wflw', input_size=(256, 256), use_target_weight=True, **form
            )
            p = pred.clone().to(device).half().requires_grad_(True)
            with torch.autocast('cuda', dtype=torch.float16):
                value = loss(p, target.to(device).half(), weight.to(device))
            value.backward()
            rel = float(
                (value.detach().float().cpu() - values['cpu']).abs()
                / values['cpu']
            )
            finite = bool(torch.isfinite(p.grad).all())
            ok = finite and rel < 2e-2
            results.append(
                (
                    name + ' (autocast fp16)',
                    ok,
                    f'rel. diff {rel:.1e}, grad finite {finite}',
                )
            )
    return results


def check_pose_bins(device: str) -> List[Result]:
    from mmaniso.ops.pose import mean_of_bin_means, pose_bins

    shapes = _shapes(400)
    ref = pose_bins(shapes, num_bins=9)
    got = pose_bins(shapes.to(device), num_bins=9)
    same = bool(torch.equal(ref.ids.cpu(), got.ids.cpu()))
    mean_ref = mean_of_bin_means(shapes, ref.ids, num_bins=9)
    mean_got = mean_of_bin_means(shapes.to(device), got.ids, num_bins=9)
    diff = float((mean_got.cpu() - mean_ref).abs().max())
    counts = ref.counts.tolist()
    return [
        (
            'pose bins',
            same,
            f'same bins of 400 shapes: {same}; counts {counts}',
        ),
        ('mean of bin means', diff < 1e-5, f'max diff {diff:.1e}'),
    ]


def check_mean_shape(checkpoint: str) -> List[Result]:
    from mmaniso.checkpoint import load_checkpoint_file

    state = load_checkpoint_file(checkpoint, map_location='cpu')['state_dict']
    keys = [k for k in state if k.endswith('mean_shape')]
    if not keys:
        return [
            (
                'mean shape in checkpoint',
                False,
                f'no mean_shape in {checkpoint}',
            )
        ]
    mean = state[keys[0]].float()
    ok = bool(torch.isfinite(mean).all()) and float(mean.std()) > 0.05
    ok = ok and float(mean.min()) >= -0.5 and float(mean.max()) <= 1.5
    return [
        (
            'mean shape in checkpoint',
            ok,
            f'{keys[0]}: range [{float(mean.min()):.3f}, '
            f'{float(mean.max()):.3f}], std {float(mean.std()):.3f}',
        )
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda')
    parser.add_argument(
        '--checkpoint', help='a checkpoint trained on the device'
    )
    args = parser.parse_args(argv)
    if args.device.startswith('cuda') and not torch.cuda.is_available():
        print(
            'device_check: --device cuda but torch sees no CUDA device',
            file=sys.stderr,
        )
        return 2
    results = check_loss(args.device) + check_pose_bins(args.device)
    if args.checkpoint:
        results += check_mean_shape(args.checkpoint)
    for name, ok, figure in results:
        print(f'{name} | {"ok" if ok else "FAIL"} | {figure}')
    return 0 if all(ok for _, ok, _ in results) else 1


if __name__ == '__main__':
    sys.exit(main())
