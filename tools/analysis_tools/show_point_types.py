"""Show a dataset's point types: as JSON, as text, or drawn over a face.

    python tools/analysis_tools/show_point_types.py NAME [--json]
    python tools/analysis_tools/show_point_types.py NAME --ann FILE
        --img-dir DIR [--index I] --out PNG [--a 5 --b 3] [--scale PX]

NAME is MMPose's dataset name (300w, wflw, aflw, cofw, coco_wholebody_face).
``--json`` prints ``{"dataset", "num_keypoints", "curves": [{"name",
"indices", "closed"}], "corners"}``. With ``--ann`` the face of annotation I
of an MMPose (COCO-style) annotation file is drawn as in the paper's Fig. 1:
each curve as a polyline in its own colour, at each curve point the
iso-cost ellipse of its weight (semi-axes ``a * scale`` along the tangent,
``b * scale`` across it), corners and isolated points (``W = I``; their
iso-cost circle, of radius ``scale``, would hide under the marker) as
distinct markers, and a legend.
"""

import argparse
import json
import math
import os.path as osp
import sys
from typing import TYPE_CHECKING, List, Optional, Tuple

import numpy as np

if TYPE_CHECKING:
    from mmaniso.datasets.point_types import PointTypes


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog='\n'.join(__doc__.splitlines()[2:5]),
    )
    parser.add_argument('name', help="MMPose's dataset_name, e.g. wflw")
    parser.add_argument(
        '--json', action='store_true', help='print the point types as JSON'
    )
    parser.add_argument('--ann', help='MMPose JSON annotation file to draw')
    parser.add_argument('--img-dir', help='folder of the annotated images')
    parser.add_argument(
        '--index', type=int, default=0, help='which annotation to draw'
    )
    parser.add_argument('--out', help='PNG file to write')
    # argparse calls look alike: each tool keeps its own flags, as MMPose's.
    parser.add_argument(
        '--a', type=float, default=5.0, help='semi-axis along a curve'
    )
    parser.add_argument(
        '--b', type=float, default=3.0, help='semi-axis across a curve'
    )
    parser.add_argument(
        '--scale',
        type=float,
        default=None,
        help='image pixels per unit of a and b in the drawing (default: '
        'half the median curve point spacing divided by a)',
    )
    args = parser.parse_args(argv)
    if args.ann and not (args.img_dir is not None and args.out):
        parser.error('--ann needs --img-dir and --out')
    if (args.img_dir or args.out) and not args.ann:
        parser.error('--img-dir and --out draw a face: give --ann too')
    return args


def describe(pt: 'PointTypes') -> str:
    """A plain-text summary of the point types."""
    lines = [f'{pt.name}: {pt.num_keypoints} keypoints']
    for c in pt.curves:
        kind = 'closed' if c.closed else 'open'
        lines.append(f'  {c.name:18s} {kind:6s} {list(c.indices)}')
    lines.append(f'  corners (W = I): {list(pt.corners)}')
    lines.append(f'  isolated (W = I): {list(pt.isolated)}')
    return '\n'.join(lines)


def load_face(
    ann_file: str, img_dir: str, index: int
) -> Tuple[np.ndarray, np.ndarray]:
    """Image (RGB) and keypoints (K, 3) of annotation ``index``."""
    import cv2

    path, kpts = face_record(ann_file, img_dir, index)
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise SystemExit(f'cannot read image {path}; check --img-dir')
    return img[..., ::-1], kpts


def face_record(
    ann_file: str, img_dir: str, index: int
) -> Tuple[str, np.ndarray]:
    """Image path and keypoints (K, 3) of annotation ``index``."""
    with open(ann_file) as f:
        coco = json.load(f)
    anns = coco.get('annotations', [])
    if not 0 <= index < len(anns):
        raise SystemExit(
            f'{ann_file} has {len(anns)} annotations; --index {index} is '
            f'out of range (0..{len(anns) - 1})'
        )
    ann = anns[index]
    images = {img['id']: img for img in coco.get('images', [])}
    if ann.get('image_id') not in images:
        raise SystemExit(
            f'{ann_file}: annotation #{index} refers to image id '
            f'{ann.get("image_id")!r}, which is not in "images"'
        )
    path = osp.join(img_dir, images[ann['image_id']]['file_name'])
    kpts = np.asarray(ann['keypoints'], dtype=np.float64).reshape(-1, 3)
    return path, kpts


def draw(
    pt: 'PointTypes',
    img: np.ndarray,
    kpts: np.ndarray,
    out: str,
    a: float = 5.0,
    b: float = 3.0,
    scale: Optional[float] = None,
) -> str:
    """Draws the curves, weight ellipses and corners of one face to PNG.

    Args:
        pt: The point types.
        img: The image, RGB, shape (H, W, 3).
        kpts: Keypoints ``x, y, visibility``, shape (K, 3).
        out: PNG path.
        a: Semi-axis along the curve.
        b: Semi-axis across the curve.
        scale: Image pixels per unit of ``a`` and ``b``; by default half the
            median spacing of consecutive curve points, divided by ``a``.

    Returns:
        The PNG path.
    """
    import matplotlib

    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    import torch
    from matplotlib.lines import Line2D
    from matplotlib.patches import Ellipse

    from mmaniso.ops.tangents import curve_tangents

    if len(kpts) != pt.num_keypoints:
        raise SystemExit(
            f'the annotation has {len(kpts)} keypoints but point types '
            f'{pt.name!r} have {pt.num_keypoints}; pick the matching NAME'
        )
    xy, vis = kpts[:, :2], kpts[:, 2] > 0
    tangents, valid = curve_tangents(
        torch.from_numpy(xy)[None],
        pt.neighbours(),
        torch.from_numpy(vis)[None],
    )
    tangents, valid = tangents[0].numpy(), valid[0].numpy() & vis
    if scale is None:
        gaps = [
            np.linalg.norm(xy[j] - xy[i])
            for c in pt.curves
            for i, j in zip(c.indices, c.indices[1:])
            if vis[i] and vis[j]
        ]
        scale = 0.5 * float(np.median(gaps)) / a if gaps else 1.0

    # Zoom on the face: the keypoints' box with a margin, inside the image.
    h, w = img.shape[:2]
    shown = xy[vis] if vis.any() else np.array([[0, 0], [w, h]], float)
    (x0, y0), (x1, y1) = shown.min(0), shown.max(0)
    margin = 0.15 * max(x1 - x0, y1 - y0, 1.0)
    x0, y0 = max(x0 - margin, 0), max(y0 - margin, 0)
    x1, y1 = min(x1 + margin, w), min(y1 + margin, h)
    fig, ax = plt.subplots(figsize=(7, 7 * (y1 - y0) / max(x1 - x0, 1)))
    ax.imshow(img, interpolation='bilinear')
    colours = plt.get_cmap('tab20')
    handles = []
    for n, c in enumerate(pt.curves):
        colour = colours(n % 20)
        idx = [i for i in c.indices] + ([c.indices[0]] if c.closed else [])
        pts = xy[idx]
        ax.plot(pts[:, 0], pts[:, 1], '-', color=colour, lw=1.2)
        handles.append(Line2D([], [], color=colour, lw=2, label=f'{c.name}'))
        for i in c.indices:
            if not valid[i]:
                continue
            angle = math.degrees(math.atan2(tangents[i, 1], tangents[i, 0]))
            ax.add_patch(
                Ellipse(
                    xy[i],
                    width=2 * a * scale,
                    height=2 * b * scale,
                    angle=angle,
                    facecolor=(*colour[:3], 0.25),
                    edgecolor=colour,
                    lw=0.8,
                )
            )
    corner_idx = [i for i in pt.corners if vis[i]]
    isolated = [i for i in pt.isolated if vis[i]]
    ax.plot(
        xy[corner_idx, 0],
        xy[corner_idx, 1],
        's',
        ms=5,
        mfc='red',
        mec='white',
        mew=0.8,
        ls='none',
    )
    # The corners' call again with the isolated points' own marker.
    ax.plot(
        xy[isolated, 0],
        xy[isolated, 1],
        'D',
        ms=4,
        mfc='yellow',
        mec='black',
        mew=0.6,
        ls='none',
    )
    # Curve points left without a tangent (their neighbours are not
    # visible) also get W = I.
    corners = set(pt.corners) | set(pt.isolated)
    no_tangent = [
        i
        for i in range(pt.num_keypoints)
        if vis[i] and not valid[i] and i not in corners
    ]
    ax.plot(
        xy[no_tangent, 0],
        xy[no_tangent, 1],
        'o',
        ms=5,
        mfc='none',
        mec='white',
        mew=1.0,
        ls='none',
    )
    on_curve = [i for i in range(pt.num_keypoints) if vis[i] and valid[i]]
    ax.plot(xy[on_curve, 0], xy[on_curve, 1], '.', color='black', ms=2)
    handles += [
        Ellipse(
            (0, 0), 1, 1, facecolor=(0.5, 0.5, 0.5, 0.25), edgecolor='gray'
        ),
        Line2D([], [], marker='s', ls='none', mfc='red', mec='white', ms=6),
        Line2D([], [], marker='D', ls='none', mfc='yellow', mec='black', ms=5),
        Line2D([], [], marker='o', ls='none', mfc='none', mec='gray', ms=5),
    ]
    labels = [h.get_label() for h in handles[: len(pt.curves)]] + [
        f'iso-cost ellipse ({a:g} along, {b:g} across)',
        'corner (W = I)',
        'isolated point (W = I)',
        'curve point without tangent (W = I)',
    ]
    ax.legend(
        handles,
        labels,
        loc='upper left',
        bbox_to_anchor=(1.01, 1.0),
        fontsize=8,
        frameon=False,
    )
    ax.set_title(
        f'{pt.name}: {pt.num_keypoints} points, a = {a:g}, b = {b:g} '
        f'(drawn at {scale:.3g} px per unit)',
        fontsize=9,
    )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y1, y0)
    ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out, dpi=150, bbox_inches='tight')
    plt.close(fig)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mmaniso.datasets.point_types import get_point_types

    try:
        pt = get_point_types(args.name)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if args.json:
        print(json.dumps(pt.to_dict()))
    elif not args.ann:
        print(describe(pt))
    if args.ann:
        from mmaniso.utils.output_paths import refuse_writing_inputs

        image_path, _ = face_record(args.ann, args.img_dir, args.index)
        refuse_writing_inputs(
            [('--out', args.out)],
            [('--ann', args.ann), ('the drawn image', image_path)],
            fix='name another --out file',
        )
        img, kpts = load_face(args.ann, args.img_dir, args.index)
        draw(pt, img, kpts, args.out, args.a, args.b, args.scale)
        if not args.json:
            print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
