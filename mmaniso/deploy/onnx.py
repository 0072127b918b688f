"""ONNX export of a top-down regression model, and a runner for the file.

The exported graph is the model's backbone, its neck and ``head.forward``
as one graph:

- input ``crops``: the batch of face crops as the model's data preprocessor
  makes it, shape (N, 3, H, W), float32: channels in the model's order and
  normalised with its mean and std (:meth:`OnnxLandmarkModel.preprocess`
  does this from the file's metadata);
- output ``keypoints``: what ``head.forward`` returns, for
  ``MeanShapeRegressionHead`` and MMPose's ``RegressionHead`` the keypoints
  normalised to the crop (RegressionLabel's frame: (0, 0) and (1, 1) are
  the crop's corners), the mean shape included, shape (N, K, 2);
- output ``scales``, only for a head that predicts scales
  (``MeanShapeRegressionHead(predict_scales=...)``): per landmark the
  scale along and across its curve in input-crop pixels, the floor
  applied, shape (N, K, 2) (an isotropic head's two columns are equal; a
  landmark without a tangent has its across scale twice). A head without
  scales keeps the one output.

The file's metadata (``metadata_props``) records the input size, the
preprocessor's mean, std and channel order, the number of keypoints, the
dataset name and its left-right pairing (``flip_indices``), and for a head
with scales its kind (``predict_scales``), its score scale ``s0`` and the
curve neighbours that give the tangents, so that a runner needs no config
(:meth:`OnnxLandmarkModel.ellipses` turns the scales into the head's
ellipses) and a tool that has one can check that the graph fits it
(:meth:`OnnxLandmarkModel.mismatches`).

onnx and onnxruntime (the ``deploy`` extra) are imported by the functions
that need them, with an error that names the extra when they are missing.
"""

import inspect
import json
import os
import os.path as osp
import statistics
import time
from typing import (
    Callable,
    Dict,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np
import torch
from torch import Tensor, nn

INPUT_NAME = 'crops'
OUTPUT_NAME = 'keypoints'
SCALES_NAME = 'scales'
# Keys of the ONNX metadata_props written by export_onnx.
META_PREFIX = 'mmaniso.'
OUTPUT_FRAME = (
    'keypoints normalised to the input crop, shape (N, K, 2): (0, 0) is '
    "the crop's top-left corner and (1, 1) its bottom-right (MMPose's "
    'RegressionLabel codec); multiply by input_size for crop pixels'
)
SCALES_FRAME = (
    'scales along and across the curve in input-crop pixels, shape '
    '(N, K, 2); OnnxLandmarkModel.ellipses turns them and the keypoints '
    "into the head's ellipses (tangents from the predicted shape)"
)

ArrayLike = Union[np.ndarray, Tensor]


def _import_deploy(name: str):
    """Imports ``onnx`` or ``onnxruntime``, naming the extra if missing."""
    try:
        if name == 'onnx':
            import onnx as module
        else:
            import onnxruntime as module
    except ImportError as err:
        raise ImportError(
            f'{name} is not installed; ONNX export and inference need the '
            "deploy extra: pip install -e '.[deploy]' (onnx, onnxruntime, "
            'onnxscript)'
        ) from err
    return module


def require_mean_shape(model: nn.Module, source: str = 'the model') -> None:
    """Refuses a mean-shape head whose mean shape is still NaN.

    Exported, a NaN mean shape becomes a constant of the graph and every
    prediction NaN.

    Args:
        model: A top-down pose estimator (``model.head``) or a head.
        source: What the model came from (the checkpoint), for the message.

    Raises:
        ValueError: When the head has a ``mean_shape`` with a NaN or an
            infinite entry.
    """
    head = getattr(model, 'head', model)
    mean_shape = getattr(head, 'mean_shape', None)
    if not isinstance(mean_shape, Tensor):
        return
    if not bool(torch.isfinite(mean_shape).all()):
        raise ValueError(
            f'{source}: {type(head).__name__}.mean_shape is NaN (neither the '
            'checkpoint nor the config sets it), so every exported '
            'prediction would be NaN. Export a checkpoint of a run trained '
            "with custom_hooks=[dict(type='PoseBalancingHook')], or give "
            'model.head.mean_shape=[[x, y], ...] (or a file) in the config'
        )


class LandmarkGraph(nn.Module):
    """Backbone, neck and ``head.forward`` of a top-down model, as one
    module from preprocessed crops to what the head returns.

    Args:
        model: A top-down pose estimator with ``backbone``, optionally
            ``neck``, and ``head``. Its modules are shared, not copied; the
            graph is put in eval mode.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        require_mean_shape(model)
        self.backbone = model.backbone
        self.neck = getattr(model, 'neck', None)
        self.head = model.head
        self.eval()

    @property
    def predicts_scales(self) -> bool:
        """Whether the head predicts scales (a second output)."""
        return _predict_scales(self.head) is not None

    def forward(self, crops: Tensor) -> Union[Tensor, Tuple[Tensor, Tensor]]:
        """Keypoints of a batch of crops, and their scales if predicted.

        Args:
            crops (Tensor): Preprocessed crops, shape (N, 3, H, W).

        Returns:
            Tensor | tuple: What ``head.forward`` returns; for a regression
            head the normalised keypoints, shape (N, K, 2). With a head that
            predicts scales, ``(keypoints, scales)``: the scales along and
            across in input-crop pixels, shape (N, K, 2).
        """
        feats = self.backbone(crops)
        if self.neck is not None:
            feats = self.neck(feats)
        keypoints = self.head.forward(feats)
        if not self.predicts_scales:
            return keypoints
        params = self.head.forward_scales(feats)
        along, across = self.head.loss_module.scales_from_params(params)
        return keypoints, torch.stack([along, across], -1)


def _predict_scales(head: nn.Module) -> Optional[str]:
    """The head's ``predict_scales`` (``'anisotropic'``,
    ``'isotropic'``), None for a head without scales."""
    return getattr(head, 'predict_scales', None)


def scales_metadata(model: nn.Module) -> Dict[str, object]:
    """What turns a head's predicted scales into its ellipses.

    Args:
        model: A top-down pose estimator (``model.head``) or a head.

    Returns:
        dict: ``predict_scales`` (``'anisotropic'``, ``'isotropic'`` or
        ``'none'``); with scales also ``score_scale`` (``s0`` of the
        keypoint score, input-crop pixels) and ``neighbours`` (previous and
        next curve neighbour of each landmark, (2, K), -1 for none).
    """
    head = getattr(model, 'head', model)
    kind = _predict_scales(head)
    if kind is None:
        return dict(predict_scales='none')
    neighbours = head.loss_module.neighbours
    return dict(
        predict_scales=kind,
        score_scale=float(head.score_scale),
        neighbours=neighbours.cpu().tolist(),
    )


def crop_ellipses(
    keypoints: ArrayLike,
    scales: ArrayLike,
    neighbours: ArrayLike,
    input_size: Sequence[int],
    score_scale: float,
) -> Tuple[np.ndarray, np.ndarray]:
    """Ellipses and keypoint scores from predicted keypoints and scales,
    as ``MeanShapeRegressionHead.predict`` makes them, in input-crop
    pixels.

    .. math:: \\mathrm{score} = s_0 / (s_0 + \\sqrt{a b})

    Args:
        keypoints (ndarray | Tensor): Normalised keypoints, shape (N, K, 2).
        scales (ndarray | Tensor): Along and across in input-crop pixels,
            shape (N, K, 2).
        neighbours (ndarray | Tensor): Curve neighbours, shape (2, K).
        input_size: The crop's ``(W, H)``.
        score_scale: ``s0``, input-crop pixels.

    Returns:
        tuple: Ellipses ``(a, b, angle)`` (a along the curve, b across,
        angle of a in radians from x towards y), shape (N, K, 3), and
        scores, shape (N, K).
    """
    from mmaniso.ops.likelihood import ellipse_axes
    from mmaniso.ops.tangents import curve_tangents

    scales = torch.as_tensor(np.asarray(scales, dtype=np.float32))
    size = torch.tensor([float(v) for v in input_size])
    kpts = torch.as_tensor(np.asarray(keypoints, dtype=np.float32)) * size
    tangents, valid = curve_tangents(
        kpts, torch.as_tensor(np.asarray(neighbours, dtype=np.int64))
    )
    along, across = scales[..., 0], scales[..., 1]
    ellipses = ellipse_axes(tangents, valid, along, across)
    scores = score_scale / (score_scale + (along * across).sqrt())
    return ellipses.numpy(), scores.numpy()


def preprocessing_metadata(model: nn.Module) -> Dict[str, object]:
    """What the model's data preprocessor does to a crop, as plain values.

    Args:
        model: A pose estimator with an MMEngine ``ImgDataPreprocessor``.

    Returns:
        dict: ``mean`` and ``std`` (per channel, after any channel flip) and
        ``bgr_to_rgb`` (whether the channels are reversed first).
    """
    pre = model.data_preprocessor
    normalise = getattr(pre, '_enable_normalize', False)
    channels = 3
    return dict(
        mean=(pre.mean.flatten().tolist() if normalise else [0.0] * channels),
        std=(pre.std.flatten().tolist() if normalise else [1.0] * channels),
        bgr_to_rgb=bool(getattr(pre, '_channel_conversion', False)),
    )


def _flip_indices(model: nn.Module) -> Optional[list]:
    """The layout's left-right pairing (``dataset_meta['flip_indices']``),
    which the flip test applies to the graph's output; None if unknown."""
    meta = getattr(model, 'dataset_meta', None) or {}
    flip = meta.get('flip_indices')
    return None if flip is None else [int(i) for i in flip]


def _torch_has_dynamo_exporter() -> bool:
    return 'dynamo' in inspect.signature(torch.onnx.export).parameters


def _export_graph(
    graph: nn.Module,
    example: Tensor,
    path: str,
    dynamic_batch: bool,
    opset_version: Optional[int],
    dynamo: bool,
    output_names: Sequence[str] = (OUTPUT_NAME,),
) -> None:
    output_names = list(output_names)
    if dynamo:
        # torch.export-based exporter (needs onnxscript): torch's default
        # since 2.9, where the TorchScript one below is deprecated and
        # warns. external_data=False keeps the weights inside the one file.
        dynamic_shapes = None
        if dynamic_batch:
            dynamic_shapes = {INPUT_NAME: {0: torch.export.Dim('batch')}}
        torch.onnx.export(
            graph,
            (example,),
            path,
            dynamo=True,
            input_names=[INPUT_NAME],
            output_names=output_names,
            opset_version=opset_version,
            dynamic_shapes=dynamic_shapes,
            external_data=False,
            verbose=False,
        )
        return
    # The TorchScript exporter: the only one of torch.onnx.export before
    # torch 2.5 (the MMPose 1.3 stack has torch 2.1).
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {INPUT_NAME: {0: 'batch'}}
        dynamic_axes.update({name: {0: 'batch'} for name in output_names})
    kwargs = dict(dynamo=False) if _torch_has_dynamo_exporter() else {}
    torch.onnx.export(
        graph,
        (example,),
        path,
        input_names=[INPUT_NAME],
        output_names=output_names,
        opset_version=opset_version or 17,
        dynamic_axes=dynamic_axes,
        **kwargs,
    )


def export_onnx(
    model: nn.Module,
    input_shape: Sequence[int],
    path: str,
    dynamic_batch: bool = False,
    opset_version: Optional[int] = None,
    dynamo: Optional[bool] = None,
) -> str:
    """Writes the backbone, neck and head of ``model`` as one ONNX graph.

    The file is written next to ``path`` and moved there once complete, so
    a failed export leaves no partial file. Any existing file is replaced:
    the caller decides whether it may be (the tool asks for
    ``--overwrite``).

    Args:
        model: A top-down pose estimator whose head's ``forward`` returns a
            tensor (e.g. ``MeanShapeRegressionHead``), with its weights
            loaded. A mean-shape head must have its mean shape set.
        input_shape: ``(N, 3, H, W)``; N is the graph's fixed batch size,
            or with ``dynamic_batch`` only the example's.
        path: The ``.onnx`` file to write.
        dynamic_batch: Whether the batch dimension is left free.
        opset_version: ONNX opset; the exporter's default when not given.
        dynamo: Use torch's torch.export-based exporter; by default when
            this torch has it (``torch.onnx.export(dynamo=...)``).

    Returns:
        str: ``path``.

    Raises:
        ValueError: For a NaN mean shape, a malformed ``input_shape``, or a
            head whose output is not one tensor.
    """
    onnx = _import_deploy('onnx')
    shape = tuple(int(v) for v in input_shape)
    if len(shape) != 4 or shape[1] != 3 or min(shape) < 1:
        raise ValueError(
            f'input_shape must be (N, 3, H, W) with positive sizes, got '
            f'{tuple(input_shape)}'
        )
    graph = LandmarkGraph(model)
    if dynamic_batch:
        # torch.export specialises a dimension of size 1 to a constant, so
        # the example of a free batch has two crops.
        shape = (max(shape[0], 2),) + shape[1:]
    parameter = next(graph.parameters(), None)
    device = parameter.device if parameter is not None else 'cpu'
    example = torch.zeros(shape, device=device)
    with torch.no_grad():
        output = graph(example)
    if graph.predicts_scales:
        output = output[0]
    if not isinstance(output, Tensor):
        raise ValueError(
            f'{type(graph.head).__name__}.forward returns a '
            f'{type(output).__name__}, not one tensor; only heads that '
            'return the keypoints as one tensor (regression heads) are '
            'exported'
        )
    if dynamo is None:
        dynamo = _torch_has_dynamo_exporter()

    path = os.fspath(path)
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    partial = osp.join(folder, f'.{osp.basename(path)}.partial')
    try:
        names = [OUTPUT_NAME]
        if graph.predicts_scales:
            names.append(SCALES_NAME)
        _export_graph(
            graph,
            example,
            partial,
            dynamic_batch,
            opset_version,
            dynamo,
            names,
        )
        proto = onnx.load(partial)
        meta = dict(
            input_size=[shape[3], shape[2]],
            num_keypoints=int(output.shape[1]) if output.ndim == 3 else None,
            dataset_name=(getattr(model, 'dataset_meta', None) or {}).get(
                'dataset_name'
            ),
            flip_indices=_flip_indices(model),
            head=type(graph.head).__name__,
            output=OUTPUT_FRAME,
            **scales_metadata(model),
            **(dict(scales=SCALES_FRAME) if graph.predicts_scales else {}),
            exporter='torch.export (dynamo)' if dynamo else 'TorchScript',
            **preprocessing_metadata(model),
        )
        onnx.helper.set_model_props(
            proto,
            {META_PREFIX + k: json.dumps(v) for k, v in meta.items()},
        )
        onnx.checker.check_model(proto)
        onnx.save(proto, partial)
        os.replace(partial, path)
    finally:
        if osp.exists(partial):
            os.remove(partial)
    return path


class OnnxLandmarkModel:
    """An exported model run by ONNX Runtime on the CPU.

    Calling it returns what the PyTorch model's ``head.forward`` returns for
    the same preprocessed crops.

    Args:
        path: The ``.onnx`` file written by :func:`export_onnx`.
        num_threads: ONNX Runtime's intra-op threads; its default (one per
            physical core) when not given.

    Attributes:
        input_shape (tuple): ``(N, 3, H, W)``, N ``None`` for a free batch.
        input_size (tuple): ``(W, H)``, the crop size.
        output_shape (tuple): The output's shape, ``None`` for a free
            dimension; ``(N, K, 2)`` for a regression head.
        output_names (list): The graph's outputs: ``keypoints``, then
            ``scales`` for a head that predicts them.
        predicts_scales (bool): Whether the graph has the ``scales``
            output (and the metadata :meth:`ellipses` needs).
        metadata (dict): What :func:`export_onnx` recorded (input size,
            mean, std, bgr_to_rgb, num_keypoints, dataset_name,
            flip_indices, predict_scales, ...).

    Raises:
        FileNotFoundError: No file at ``path``.
        ValueError: A file ONNX Runtime cannot load (not ONNX, truncated),
            or a graph whose input is not a batch of crops; the message
            names the file and the fix.
    """

    def __init__(self, path: str, num_threads: Optional[int] = None) -> None:
        ort = _import_deploy('onnxruntime')
        if not osp.isfile(path):
            raise FileNotFoundError(f'ONNX model not found: {path}')
        options = ort.SessionOptions()
        if num_threads is not None:
            options.intra_op_num_threads = int(num_threads)
            options.inter_op_num_threads = 1
        self.path = path
        try:
            self.session = ort.InferenceSession(
                path, sess_options=options, providers=['CPUExecutionProvider']
            )
        except Exception as err:  # onnxruntime's errors derive Exception
            raise ValueError(
                f'{path}: ONNX Runtime cannot load it as an ONNX model '
                f'({str(err).strip()}); it is not an ONNX file, or it is '
                'truncated or corrupt. Export it again with '
                'tools/deployment/export_onnx.py'
            ) from None
        graph_input = self.session.get_inputs()[0]
        self.input_name = graph_input.name
        self.input_shape = tuple(
            d if isinstance(d, int) else None for d in graph_input.shape
        )
        self.output_shape = tuple(
            d if isinstance(d, int) else None
            for d in self.session.get_outputs()[0].shape
        )
        if len(self.input_shape) != 4:
            raise ValueError(
                f'{path}: its input {self.input_name!r} has shape '
                f'{graph_input.shape}, not a batch of crops (N, 3, H, W); '
                'export the model with tools/deployment/export_onnx.py'
            )
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            self.metadata = {
                key[len(META_PREFIX) :]: json.loads(value)
                for key, value in props.items()
                if key.startswith(META_PREFIX)
            }
        except json.JSONDecodeError as err:
            raise ValueError(
                f'{path}: its {META_PREFIX}* metadata is not JSON ({err}); '
                'export it again with tools/deployment/export_onnx.py'
            ) from None
        self.input_size = (self.input_shape[3], self.input_shape[2])
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.predicts_scales = SCALES_NAME in self.output_names
        if self.predicts_scales:
            missing = [
                key
                for key in ('score_scale', 'neighbours')
                if key not in self.metadata
            ]
            if missing:
                raise ValueError(
                    f'{path}: the graph has a {SCALES_NAME!r} output but its '
                    f'metadata lacks {", ".join(missing)}, which turn the '
                    'scales into ellipses; export it again with '
                    'tools/deployment/export_onnx.py'
                )

    def mismatches(self, expected: Dict[str, object]) -> List[str]:
        """What differs between the graph and the model it should stand in
        for.

        Args:
            expected: Any of ``input_size`` ``(W, H)``, ``num_keypoints``,
                ``dataset_name``, ``flip_indices``, ``mean``, ``std`` and
                ``bgr_to_rgb``, as the config gives them.

        Returns:
            One ``'name: graph X, config Y'`` line per difference, read
            from the graph's shapes first and its metadata second; empty
            when all agree.
        """
        graph = dict(self.metadata)
        graph['input_size'] = list(self.input_size)
        if len(self.output_shape) == 3 and self.output_shape[1] is not None:
            graph['num_keypoints'] = self.output_shape[1]
        out = []
        for key, want in expected.items():
            have = graph.get(key)
            if want is None or have is None:
                continue  # unknown on one side: nothing to compare
            if isinstance(want, tuple):
                want = list(want)
            if key in ('mean', 'std'):
                same = len(have) == len(want) and np.allclose(
                    have, want, rtol=1e-5, atol=1e-6
                )
            elif isinstance(want, (list, tuple)):
                same = list(have) == list(want)
            else:
                same = have == want
            if not same:
                out.append(f'{key}: graph {have!r}, config {want!r}')
        return out

    def preprocess(self, images: Union[np.ndarray, Sequence]) -> np.ndarray:
        """Does what the model's data preprocessor does, from the metadata.

        Args:
            images (ndarray | Sequence[ndarray]): Crops as MMPose's
                ``TopdownAffine`` makes them: (N, H, W, 3) or a list of
                (H, W, 3), channels in the order of ``LoadImage`` (BGR).

        Returns:
            ndarray: The graph's input, shape (N, 3, H, W), float32.
        """
        if 'mean' not in self.metadata:
            raise ValueError(
                f'{self.path} has no mmaniso preprocessing metadata (mean, '
                'std, bgr_to_rgb); export it with export_onnx or '
                'tools/deployment/export_onnx.py, or preprocess the crops '
                "with the model's data preprocessor"
            )
        batch = np.stack([np.asarray(image) for image in images])
        if batch.ndim != 4 or batch.shape[-1] != 3:
            raise ValueError(
                'images must be (H, W, 3) crops, got a batch of shape '
                f'{batch.shape}'
            )
        batch = batch.astype(np.float32)
        if self.metadata['bgr_to_rgb']:
            batch = batch[..., ::-1]
        mean = np.asarray(self.metadata['mean'], dtype=np.float32)
        std = np.asarray(self.metadata['std'], dtype=np.float32)
        batch = (batch - mean) / std
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    def __call__(self, crops: ArrayLike) -> np.ndarray:
        """Keypoints of preprocessed crops.

        Args:
            crops (ndarray | Tensor): Shape (N, 3, H, W), as the model's
                data preprocessor (or :meth:`preprocess`) makes them.

        Returns:
            ndarray: What ``head.forward`` returns: for a regression head
            the keypoints normalised to the crop, shape (N, K, 2).
        """
        return self.run(crops)[OUTPUT_NAME]

    def run(self, crops: ArrayLike) -> Dict[str, np.ndarray]:
        """Every output of the graph for preprocessed crops.

        Args:
            crops (ndarray | Tensor): Shape (N, 3, H, W).

        Returns:
            dict: ``keypoints`` (N, K, 2), normalised to the crop, and for
            a graph that predicts scales ``scales`` (N, K, 2), along and
            across in input-crop pixels.
        """
        if isinstance(crops, Tensor):
            crops = crops.detach().cpu().numpy()
        crops = np.ascontiguousarray(crops, dtype=np.float32)
        expected = self.input_shape
        if crops.ndim != 4 or crops.shape[1:] != expected[1:]:
            raise ValueError(
                f'{self.path} takes crops of shape (N, {expected[1]}, '
                f'{expected[2]}, {expected[3]}), got {crops.shape}'
            )
        if expected[0] is not None and crops.shape[0] != expected[0]:
            raise ValueError(
                f'{self.path} was exported with a fixed batch of '
                f'{expected[0]} crops, got {crops.shape[0]}; export it '
                'again with --dynamic-batch (dynamic_batch=True) for other '
                'batch sizes'
            )
        outputs = self.session.run(None, {self.input_name: crops})
        return dict(zip(self.output_names, outputs))

    def ellipses(
        self, keypoints: ArrayLike, scales: ArrayLike
    ) -> Tuple[np.ndarray, np.ndarray]:
        """The head's ellipses and keypoint scores, in input-crop pixels.

        What ``MeanShapeRegressionHead.predict`` computes from the same
        keypoints and scales (:func:`crop_ellipses`): tangents from the
        predicted shape, ``(a, b, angle)`` with the angle in radians, and
        ``s0 / (s0 + sqrt(a b))``. Map them to the image with
        :func:`mmaniso.ops.likelihood.map_ellipses` and the crop's
        ``bbox_scale / input_size``.

        Args:
            keypoints (ndarray | Tensor): The ``keypoints`` output (or its
                flip-test average), shape (N, K, 2).
            scales (ndarray | Tensor): The ``scales`` output, (N, K, 2).

        Returns:
            tuple: Ellipses, shape (N, K, 3), and scores, shape (N, K).

        Raises:
            ValueError: The graph predicts no scales.
        """
        if not self.predicts_scales:
            raise ValueError(
                f'{self.path} has no {SCALES_NAME!r} output: its head '
                'predicts no scales, so it has no ellipses; export a model '
                "with MeanShapeRegressionHead(predict_scales='anisotropic') "
                "or 'isotropic'"
            )
        return crop_ellipses(
            keypoints,
            scales,
            self.metadata['neighbours'],
            self.input_size,
            float(self.metadata['score_scale']),
        )


def run_onnx(path: str, crops: ArrayLike) -> np.ndarray:
    """Runs an exported model once; see :class:`OnnxLandmarkModel`.

    Args:
        path: The ``.onnx`` file.
        crops (ndarray | Tensor): Preprocessed crops, shape (N, 3, H, W).

    Returns:
        ndarray: What ``head.forward`` returns, shape (N, K, 2).
    """
    return OnnxLandmarkModel(path)(crops)


def max_crop_difference(
    prediction: ArrayLike, reference: ArrayLike, input_size: Sequence[int]
) -> Tuple[float, float]:
    """The largest difference of two normalised keypoint sets.

    Args:
        prediction (ndarray | Tensor): Normalised keypoints, shape
            (N, K, 2).
        reference (ndarray | Tensor): The same, shape (N, K, 2).
        input_size: The crop's ``(W, H)``.

    Returns:
        tuple: The largest coordinate difference in crop pixels, and as a
        fraction of the crop size (of its width for x, its height for y).
    """
    prediction = np.asarray(prediction, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if prediction.shape != reference.shape or prediction.shape[-1] != 2:
        raise ValueError(
            f'keypoints of shapes {prediction.shape} and {reference.shape} '
            'cannot be compared; both must be (N, K, 2)'
        )
    delta = np.abs(prediction - reference)  # (N, K, 2), fractions
    pixels = delta * np.asarray(input_size, dtype=np.float64)
    return float(pixels.max(initial=0.0)), float(delta.max(initial=0.0))


def median_latency(
    run: Callable[[], object], runs: int = 10, warmup: int = 2
) -> float:
    """Median wall time of ``run()`` in seconds, after ``warmup`` calls.

    Time one runtime at a time, not taking turns: PyTorch's OpenMP threads
    and ONNX Runtime's thread pool both spin for a moment after each call,
    so turns would bill one runtime for the other's spinning threads.
    """
    if runs < 1:
        raise ValueError(f'runs must be at least 1, got {runs}')
    for _ in range(warmup):
        run()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
