"""Export a trained top-down regression model to ONNX and check it.

    python tools/deployment/export_onnx.py CONFIG CHECKPOINT --out model.onnx
        [--dynamic-batch] [--batch-size N] [--input-size W H]
        [--latency-batches 1 32] [--runs 10] [--warmup 2] [--threads N]
        [--opset N] [--cfg-options k=v ...] [--overwrite]

The graph is the backbone, the neck and ``head.forward`` (see
:mod:`mmaniso.deploy.onnx`): its input is the batch of crops as the model's
data preprocessor makes it, (N, 3, H, W), its output the keypoints
normalised to the crop, (N, K, 2), the mean shape included; a head that
predicts scales (``predict_scales``) adds the output ``scales``, (N, K, 2),
along and across the curve in input-crop pixels, and the metadata that turns
them into its ellipses (``OnnxLandmarkModel.ellipses``). The checkpoint is
loaded as MMPose loads it (``mmpose.apis.init_model``, then MMEngine's
``load_checkpoint``, strictly, through mmaniso's safe loader); a mean-shape
head whose mean shape is still NaN is refused.

Then, on seeded random crops of the model's input size, preprocessed by the
model's data preprocessor, ONNX Runtime and PyTorch are compared and timed
at each ``--latency-batches`` size (only the fixed batch without
``--dynamic-batch``): the largest difference in crop pixels and as a
fraction of the crop size (it must stay under 1e-4, or the tool exits with
an error; so must the largest relative difference of the scales, when the
graph has them), and the median latency of both on this CPU with the same
number of threads. The crop size is the codec's (``--input-size`` may
only repeat it: the trained head's frame is the codec's). An existing
``--out`` is refused unless ``--overwrite``; an ``--out`` that is the
config or the checkpoint (through a link too) is always refused.

Needs the deploy extra: ``pip install -e '.[deploy]'``.
"""

import argparse
import json
import math
import os.path as osp

from mmengine.config import DictAction

# The largest difference allowed between ONNX Runtime and PyTorch, as a
# fraction of the crop size.
PARITY_LIMIT = 1e-4


def parse_args(argv=None):
    # Same shape as the other tools' parsers: MMPose's flags, each tool's own.
    parser = argparse.ArgumentParser(
        description='Export a top-down regression model to ONNX'
    )
    parser.add_argument('config', help='config file of the model')
    parser.add_argument(
        'checkpoint', help='checkpoint file, or a URL (scheme://...)'
    )
    parser.add_argument('--out', required=True, help='the .onnx file')
    parser.add_argument(
        '--dynamic-batch',
        action='store_true',
        help='leave the batch dimension free (else fixed to --batch-size)',
    )
    parser.add_argument(
        '--batch-size',
        type=int,
        default=1,
        help='the fixed batch of a graph without --dynamic-batch',
    )
    parser.add_argument(
        '--input-size',
        type=int,
        nargs=2,
        metavar=('W', 'H'),
        help="crop size: the head's codec input_size, which is the "
        'default (any other is refused); needed only for a head without a '
        'codec',
    )
    parser.add_argument(
        '--latency-batches',
        type=int,
        nargs='+',
        default=[1, 32],
        help='batch sizes at which ONNX Runtime and PyTorch are compared '
        'and timed (with --dynamic-batch)',
    )
    parser.add_argument(
        '--runs', type=int, default=10, help='timed runs per figure'
    )
    parser.add_argument(
        '--warmup', type=int, default=2, help='untimed runs before them'
    )
    parser.add_argument(
        '--threads',
        type=int,
        help="threads of both PyTorch and ONNX Runtime; torch's default "
        'when not given',
    )
    parser.add_argument('--opset', type=int, help='ONNX opset version')
    parser.add_argument('--seed', type=int, default=0, help='crops seed')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, key=value pairs',
    )
    # Same flags as tools/test.py's parser: each tool keeps MMPose's own.
    parser.add_argument(
        '--overwrite',
        action='store_true',
        help='replace an existing --out file (refused otherwise)',
    )
    args = parser.parse_args(argv)
    for option, value in [
        ('--batch-size', args.batch_size),
        ('--runs', args.runs),
        ('--threads', args.threads),
    ] + [('--latency-batches', b) for b in args.latency_batches]:
        if value is not None and value < 1:
            parser.error(f'{option} must be at least 1, got {value}')
    if args.warmup < 0:
        parser.error(f'--warmup must be 0 or more, got {args.warmup}')
    return args


def check_outputs(args) -> None:
    """Refuses an existing ``--out`` before anything is built, unless
    ``--overwrite``; refuses a missing config or local checkpoint."""
    from mmaniso.utils.launch import has_url_scheme, refuse_existing_files
    from mmaniso.utils.output_paths import refuse_writing_inputs

    if not args.out.endswith('.onnx'):
        raise SystemExit(f'--out must name a .onnx file, got {args.out}')
    refuse_writing_inputs(
        [('--out', args.out)],
        [
            ('the config', args.config),
            (
                'the checkpoint',
                None if has_url_scheme(args.checkpoint) else args.checkpoint,
            ),
        ],
        fix='name another --out file',
    )
    refuse_existing_files([('--out', args.out)], args.overwrite)
    if not osp.isfile(args.config):
        raise SystemExit(f'config file not found: {args.config}')
    checkpoint = args.checkpoint
    if not has_url_scheme(checkpoint) and not osp.isfile(checkpoint):
        raise SystemExit(f'checkpoint not found: {checkpoint}')


def load_model(config: str, checkpoint: str, cfg_options=None):
    """The model of ``config`` with the weights of ``checkpoint``, on CPU
    (:func:`mmaniso.deploy.inference.load_model`: strict, no download)."""
    from mmaniso.deploy.inference import load_model as load

    try:
        return load(config, checkpoint, 'cpu', cfg_options)
    except ValueError as e:
        raise SystemExit(str(e)) from None


def model_input_size(model, given=None):
    """``(W, H)``: the head's codec input size; ``--input-size`` only for a
    head without one, or equal to it.

    The codec divides the keypoints by its input size, and the head (a
    mean-shape head's mean shape, its loss) was trained in that frame: a
    graph traced at another crop size gives keypoints in no frame at all,
    even though ONNX Runtime reproduces PyTorch on it (the parity check
    compares the two at the traced size, not with the trained model).
    """
    decoder = getattr(model.head, 'decoder', None)
    size = getattr(decoder, 'input_size', None)
    if size is None:
        if given:
            return tuple(int(v) for v in given)
        raise SystemExit(
            'the head has no codec input_size; give the crop size with '
            '--input-size W H'
        )
    size = tuple(int(v) for v in size)
    if given and tuple(int(v) for v in given) != size:
        raise SystemExit(
            f'--input-size {given[0]} {given[1]} differs from the input size '
            f"of the model's codec, {size[0]} {size[1]} (the crop size it "
            'was trained on); a graph of another size would give keypoints '
            f'in the wrong frame. Leave --input-size out (or give {size[0]} '
            f'{size[1]}); for another crop size, train a config whose codec '
            'and TopdownAffine have it'
        )
    return size


def make_crops(model, batch: int, input_size, seed: int):
    """Seeded random crops of ``input_size``, through the model's data
    preprocessor, as the graph takes them: (batch, 3, H, W)."""
    import numpy as np
    import torch

    width, height = input_size
    rng = np.random.default_rng(seed + batch)
    images = rng.integers(0, 256, (batch, height, width, 3), dtype=np.uint8)
    # What PackPoseInputs gives the data preprocessor: CHW uint8 tensors.
    inputs = [torch.from_numpy(image).permute(2, 0, 1) for image in images]
    return preprocess(model, inputs)


def preprocess(model, inputs):
    """The data preprocessor's output for CHW uint8 crops. Empty data
    samples go with them: MMPose 1.3's preprocessor walks them."""
    import torch
    from mmpose.structures import PoseDataSample

    samples = [PoseDataSample() for _ in inputs]
    with torch.no_grad():
        batch = dict(inputs=inputs, data_samples=samples)
        return model.data_preprocessor(batch, False)['inputs']


def compare(model, path, input_size, batches, runs, warmup, threads, seed):
    """Differences and latencies of ONNX Runtime and PyTorch per batch."""
    import torch

    from mmaniso.deploy import (
        LandmarkGraph,
        OnnxLandmarkModel,
        max_crop_difference,
        median_latency,
    )

    graph = LandmarkGraph(model)
    runtime = OnnxLandmarkModel(path, num_threads=threads)
    rows = []
    for batch in batches:
        crops = make_crops(model, batch, input_size, seed)
        crops_np = crops.numpy()
        with torch.inference_mode():
            reference = graph(crops)
        outputs = runtime.run(crops_np)
        scales = None
        if isinstance(reference, tuple):  # keypoints and scales
            reference, ref_scales = reference
            scales = max_relative_difference(
                outputs['scales'], ref_scales.numpy()
            )
        pixels, fraction = max_crop_difference(
            outputs['keypoints'], reference.numpy(), input_size
        )

        def run_torch(crops=crops):
            with torch.inference_mode():
                graph(crops)

        def run_onnxruntime(crops=crops_np):
            runtime(crops)

        # One runtime after the other (see median_latency).
        torch_s = median_latency(run_torch, runs, warmup)
        onnxruntime_s = median_latency(run_onnxruntime, runs, warmup)
        rows.append(
            dict(
                batch=batch,
                torch_ms=1e3 * torch_s,
                onnxruntime_ms=1e3 * onnxruntime_s,
                max_diff_px=pixels,
                max_diff_fraction=fraction,
                **({} if scales is None else dict(max_scale_rel_diff=scales)),
            )
        )
    return rows


def max_relative_difference(prediction, reference) -> float:
    """The largest ``|prediction - reference| / |reference|`` (the scales
    are positive, at least the loss's floor)."""
    import numpy as np

    prediction = np.asarray(prediction, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if prediction.shape != reference.shape:
        raise ValueError(
            f'scales of shapes {prediction.shape} and {reference.shape} '
            'cannot be compared'
        )
    delta = np.abs(prediction - reference) / np.abs(reference)
    return float(delta.max(initial=0.0))


def check_parity(rows, path, input_size) -> str:
    """The parity line; exits with an error when a difference reaches
    ``PARITY_LIMIT`` of the crop size (or is NaN)."""
    width, height = input_size
    # A NaN difference is the worst of all.
    worst = max(
        rows,
        key=lambda r: (
            math.isnan(r['max_diff_fraction']),
            r['max_diff_fraction'],
        ),
    )
    verdict = (
        f'parity: max |ORT - torch| = {worst["max_diff_px"]:.2e} px of the '
        f'{width}x{height} crop = {worst["max_diff_fraction"]:.2e} of the '
        f'crop size (limit {PARITY_LIMIT:.0e})'
    )
    fractions = [row['max_diff_fraction'] for row in rows]
    if not all(fraction < PARITY_LIMIT for fraction in fractions):
        raise SystemExit(
            f'{verdict}: FAILED at batch {worst["batch"]}; {path} does not '
            'reproduce the PyTorch model (the file is kept for inspection)'
        )
    scaled = [row for row in rows if 'max_scale_rel_diff' in row]
    if scaled:
        worst = max(
            scaled,
            key=lambda r: (
                math.isnan(r['max_scale_rel_diff']),
                r['max_scale_rel_diff'],
            ),
        )
        verdict += (
            f'; scales: max |ORT - torch| / torch = '
            f'{worst["max_scale_rel_diff"]:.2e} (limit {PARITY_LIMIT:.0e})'
        )
        within = [r['max_scale_rel_diff'] < PARITY_LIMIT for r in scaled]
        if not all(within):
            raise SystemExit(
                f'{verdict}: FAILED at batch {worst["batch"]}; the scales '
                f'of {path} do not reproduce the PyTorch model (the file is '
                'kept for inspection)'
            )
    return f'{verdict}: ok'


def format_report(path, summary, rows, runs, warmup, threads) -> str:
    """The printed table."""
    lines = [
        f'wrote {path} ({summary["megabytes"]:.1f} MB): {summary["graph"]}',
        f'  input {summary["input"]}, output {summary["output"]}, '
        f'opset {summary["opset"]}, {summary["exporter"]} exporter',
        f'latency: median of {runs} runs after {warmup} warm-up, ms per '
        f'batch, {threads} threads for both',
        '',
        f'{"batch":>5}  {"PyTorch ms":>10}  {"ONNX Runtime ms":>15}  '
        f'{"max |ORT - torch| px":>20}  {"/ crop size":>11}',
    ]
    for row in rows:
        lines.append(
            f'{row["batch"]:>5}  {row["torch_ms"]:>10.2f}  '
            f'{row["onnxruntime_ms"]:>15.2f}  {row["max_diff_px"]:>20.2e}  '
            f'{row["max_diff_fraction"]:>11.2e}'
        )
    return '\n'.join(lines)


def main(argv=None) -> dict:
    """Exports, compares, prints; returns the figures."""
    args = parse_args(argv)
    from mmaniso.utils.launch import quiet_known_warnings

    quiet_known_warnings()
    check_outputs(args)

    import torch

    try:
        from mmaniso.deploy import export_onnx, require_mean_shape
        from mmaniso.deploy.onnx import _import_deploy

        onnx = _import_deploy('onnx')
        _import_deploy('onnxruntime')
    except ImportError as err:
        raise SystemExit(str(err)) from None

    model = load_model(args.config, args.checkpoint, args.cfg_options)
    try:
        require_mean_shape(model, source=args.checkpoint)
    except ValueError as err:
        raise SystemExit(str(err)) from None
    width, height = model_input_size(model, args.input_size)
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)

    batch = args.batch_size
    export_onnx(
        model,
        (batch, 3, height, width),
        args.out,
        dynamic_batch=args.dynamic_batch,
        opset_version=args.opset,
    )
    if args.dynamic_batch:
        batches = list(dict.fromkeys(args.latency_batches))
    else:
        batches = [batch]

    proto = onnx.load(args.out)
    opset = max(
        (o.version for o in proto.opset_import if o.domain in ('', 'ai.onnx')),
        default=None,
    )
    summary = dict(
        megabytes=osp.getsize(args.out) / 2**20,
        graph=' + '.join(
            type(m).__name__
            for m in (model.backbone, getattr(model, 'neck', None), model.head)
            if m is not None
        ),
        input=f'crops ({"N" if args.dynamic_batch else batch}, 3, {height}, '
        f'{width})',
        output=f'keypoints normalised to the crop '
        f'({"N" if args.dynamic_batch else batch}, '
        f'{model.head.num_joints}, 2)'
        + (
            f', scales along and across in crop pixels '
            f'({"N" if args.dynamic_batch else batch}, '
            f'{model.head.num_joints}, 2)'
            if getattr(model.head, 'predict_scales', None)
            else ''
        ),
        opset=opset,
        exporter=json.loads(
            {p.key: p.value for p in proto.metadata_props}.get(
                'mmaniso.exporter', '"?"'
            )
        ),
    )
    rows = compare(
        model,
        args.out,
        (width, height),
        batches,
        args.runs,
        args.warmup,
        threads,
        args.seed,
    )
    print(
        format_report(args.out, summary, rows, args.runs, args.warmup, threads)
    )
    if not args.dynamic_batch and args.latency_batches != [batch]:
        print(
            f'(a fixed-batch graph: compared and timed at batch {batch} only; '
            'export with --dynamic-batch for other batch sizes)'
        )
    print(check_parity(rows, args.out, (width, height)), flush=True)
    return dict(path=args.out, summary=summary, rows=rows)


if __name__ == '__main__':
    main()
