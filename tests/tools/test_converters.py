"""The dataset converters on tiny fixtures in each official format.

Each test writes a few fake images and annotations in the raw format, runs
the converter's command line and loads its JSON with MMPose's own dataset
class.
"""

import json
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from conftest import load_tool
from scipy.io import savemat

from mmaniso.datasets.converters import parse_wflw_line, read_pts
from mmaniso.datasets.converters.wflw import ATTRIBUTES

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def converter(name):
    return load_tool('tools', 'dataset_converters', f'{name}.py')


def write_image(path, height, width):
    os.makedirs(osp.dirname(path), exist_ok=True)
    img = np.full((height, width, 3), 128, dtype=np.uint8)
    assert cv2.imwrite(str(path), img)


def face_points(rng, num, centre=(40.0, 30.0), size=20.0):
    return np.asarray(centre) + rng.uniform(-size / 2, size / 2, (num, 2))


def load_dataset(cls_name, root, ann_file):
    import mmpose.datasets as datasets

    cls = getattr(datasets, cls_name)
    return cls(
        data_root=str(root) + '/',
        ann_file=f'annotations/{ann_file}',
        data_prefix=dict(img='images/'),
        pipeline=[],
        test_mode=True,
    )


# ---------------------------------------------------------------- WFLW
def wflw_line(points, box, flags, name):
    values = [f'{v:.3f}' for v in points.ravel()]
    values += [str(b) for b in box] + [str(f) for f in flags] + [name]
    return ' '.join(values)


@pytest.fixture
def wflw_raw(tmp_path):
    """3 train faces (two share an image), 3 test faces with flags."""
    rng = np.random.default_rng(0)
    root = tmp_path / 'wflw'
    lists = root / 'WFLW_annotations' / 'list_98pt_rect_attr_train_test'
    lists.mkdir(parents=True)
    names = ['0--Parade/a.jpg', '0--Parade/b.jpg', '1--Handshaking/c.jpg']
    for name in names:
        write_image(root / 'images' / name, 60, 80)
    flags = {
        'train': [(0,) * 6, (1, 0, 0, 0, 0, 0), (0,) * 6],
        'test': [(1, 0, 0, 0, 0, 1), (0, 1, 0, 0, 1, 0), (1, 1, 1, 1, 1, 1)],
    }
    image_of = {'train': [0, 0, 1], 'test': [2, 1, 2]}
    points = {}
    for split in ('train', 'test'):
        pts = [face_points(rng, 98) for _ in range(3)]
        lines = [
            wflw_line(p, (25, 15, 55, 45), f, names[i])
            for p, f, i in zip(pts, flags[split], image_of[split])
        ]
        (lists / f'list_98pt_rect_attr_{split}.txt').write_text(
            '\n'.join(lines) + '\n'
        )
        points[split] = pts
    return root, points, flags


def test_wflw_converts_and_loads_in_mmpose(wflw_raw):
    root, points, flags = wflw_raw
    paths = converter('convert_wflw').main([str(root)])
    expected = {'train', 'test'} | {f'test_{a}' for a in ATTRIBUTES}
    assert set(paths) == expected

    train = json.load(open(paths['train']))
    assert len(train['images']) == 2  # two faces share an image
    assert train['images'][0]['height'] == 60
    assert train['images'][0]['width'] == 80
    ann = train['annotations'][0]
    assert ann['bbox'] == [25.0, 15.0, 30.0, 30.0]
    assert ann['iscrowd'] == 0 and ann['category_id'] == 1
    assert ann['num_keypoints'] == 98

    ds = load_dataset('WFLWDataset', root, 'face_landmarks_wflw_test.json')
    assert len(ds) == 3
    for i in range(3):
        info = ds.get_data_info(i)
        k = info['id'] - 1  # ids follow the list order
        np.testing.assert_allclose(
            info['keypoints'][0], points['test'][k], atol=1e-3
        )
        assert info['img_path'].startswith(str(root / 'images'))

    test = json.load(open(paths['test']))
    for ann, f in zip(test['annotations'], flags['test']):
        assert ann['attributes'] == dict(zip(ATTRIBUTES, f))
    # Subset files keep the test ids; pose flags are set on faces 1 and 3.
    pose = json.load(open(paths['test_largepose']))
    assert [a['id'] for a in pose['annotations']] == [1, 3]
    ds = load_dataset(
        'WFLWDataset', root, 'face_landmarks_wflw_test_makeup.json'
    )
    assert len(ds) == 1


def test_wflw_malformed_line_names_file_and_line(wflw_raw, capsys):
    root, _, _ = wflw_raw
    path = (
        root
        / 'WFLW_annotations'
        / 'list_98pt_rect_attr_train_test'
        / 'list_98pt_rect_attr_train.txt'
    )
    lines = path.read_text().splitlines()
    lines[1] = ' '.join(lines[1].split()[:12])
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(SystemExit) as e:
        converter('convert_wflw').main([str(root)])
    assert 'list_98pt_rect_attr_train.txt:2: expected 207 fields, got 12' in (
        str(e.value)
    )


def test_wflw_line_errors():
    good = ['1.0'] * 196 + ['0', '0', '9', '9'] + ['0'] * 6 + ['x.jpg']
    assert parse_wflw_line(' '.join(good), 'l.txt:1').file_name == 'x.jpg'
    bad = list(good)
    bad[5] = 'abc'
    with pytest.raises(ValueError, match=r"l.txt:3: field 6 'abc' is not"):
        parse_wflw_line(' '.join(bad), 'l.txt:3')
    bad = list(good)
    bad[200] = '2'
    with pytest.raises(ValueError, match='l.txt:4: attribute flags must be'):
        parse_wflw_line(' '.join(bad), 'l.txt:4')
    bad = list(good)
    bad[198] = '0'
    with pytest.raises(ValueError, match='l.txt:5: empty face rectangle'):
        parse_wflw_line(' '.join(bad), 'l.txt:5')


def test_wflw_missing_folders(tmp_path):
    tool = converter('convert_wflw')
    with pytest.raises(SystemExit, match='list_98pt_rect_attr_train_test'):
        tool.main([str(tmp_path)])
    lists = tmp_path / 'WFLW_annotations' / 'list_98pt_rect_attr_train_test'
    lists.mkdir(parents=True)
    with pytest.raises(SystemExit, match=str(tmp_path / 'images')):
        tool.main([str(tmp_path)])


# ---------------------------------------------------------------- 300W
def write_pts(path, points):
    body = '\n'.join(f'{x:.3f} {y:.3f}' for x, y in points)
    text = f'version: 1\nn_points:  {len(points)}\n{{\n{body}\n}}\n'
    path.write_text(text)


FOLDERS_300W = {
    'lfpw/trainset': 2,
    'helen/trainset': 1,
    'afw': 1,
    'lfpw/testset': 1,
    'helen/testset': 2,
    'ibug': 2,
    'Test/01_Indoor': 1,
    'Test/02_Outdoor': 1,
}


@pytest.fixture
def w300_raw(tmp_path):
    rng = np.random.default_rng(1)
    root = tmp_path / '300w'
    points = {}
    for folder, num in FOLDERS_300W.items():
        for i in range(num):
            ext = '.png' if folder.startswith(('lfpw', 'Test')) else '.jpg'
            stem = root / 'images' / folder / f'img_{i}'
            write_image(f'{stem}{ext}', 50, 70)
            pts = face_points(rng, 68, centre=(35.0, 25.0))
            write_pts(stem.with_suffix('.pts'), pts)
            points[f'{folder}/img_{i}{ext}'] = pts
    return root, points


def test_300w_converts_and_loads_in_mmpose(w300_raw):
    root, points = w300_raw
    paths = converter('convert_300w').main([str(root)])
    assert set(paths) == {
        'train',
        'valid',
        'valid_common',
        'valid_challenge',
        'test',
    }
    sizes = {
        'train': 4,
        'valid': 5,
        'valid_common': 3,
        'valid_challenge': 2,
        'test': 2,
    }
    for split, num in sizes.items():
        ds = load_dataset(
            'Face300WDataset', root, f'face_landmarks_300w_{split}.json'
        )
        assert len(ds) == num, split
        for i in range(num):
            info = ds.get_data_info(i)
            name = osp.relpath(info['img_path'], str(root / 'images'))
            # Coordinates are kept as written in the .pts files.
            np.testing.assert_allclose(
                info['keypoints'][0], points[name], atol=1e-3
            )
    valid = json.load(open(paths['valid']))
    flags = [a['attributes'] for a in valid['annotations']]
    assert [f['common'] for f in flags] == [1, 1, 1, 0, 0]
    assert [f['challenging'] for f in flags] == [0, 0, 0, 1, 1]
    challenge = json.load(open(paths['valid_challenge']))
    assert [a['id'] for a in challenge['annotations']] == [4, 5]
    test = json.load(open(paths['test']))
    assert test['images'][0]['file_name'] == 'Test/01_Indoor/img_0.png'
    assert test['annotations'][1]['attributes']['outdoor'] == 1


def test_300w_zero_based_and_no_private(w300_raw, tmp_path):
    root, points = w300_raw
    out = tmp_path / 'out'
    paths = converter('convert_300w').main(
        [str(root), '--out-dir', str(out), '--no-private', '--zero-based']
    )
    assert 'test' not in paths
    ann = json.load(open(paths['train']))['annotations'][0]
    kpts = np.array(ann['keypoints']).reshape(-1, 3)[:, :2]
    np.testing.assert_allclose(
        kpts + 1, points['lfpw/trainset/img_0.png'], atol=1e-3
    )


def test_300w_malformed_pts(w300_raw):
    root, _ = w300_raw
    path = root / 'images' / 'afw' / 'img_0.pts'
    lines = path.read_text().splitlines()
    lines[7] = '12.0 oops'
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(SystemExit) as e:
        converter('convert_300w').main([str(root)])
    assert f'{path}:8: expected a point "x y", got \'12.0 oops\'' in str(
        e.value
    )


def test_pts_errors(tmp_path):
    path = tmp_path / 'a.pts'
    write_pts(path, np.zeros((5, 2)))
    with pytest.raises(ValueError, match='expected 68 points, .* has 5'):
        read_pts(str(path))
    assert read_pts(str(path), num_points=5).shape == (5, 2)
    path.write_text('version: 1\nn_points: 2\n{\n1 2\n3 4\n')
    with pytest.raises(ValueError, match=r'a.pts:5: unexpected end'):
        read_pts(str(path), num_points=2)
    path.write_text('version: 1\nn_points: 3\n{\n1 2\n3 4\n}\n')
    with pytest.raises(ValueError, match='n_points says 3 but 2 points'):
        read_pts(str(path), num_points=3)


def test_300w_missing_folder(w300_raw):
    root, _ = w300_raw
    for name in os.listdir(root / 'images' / 'ibug'):
        os.remove(root / 'images' / 'ibug' / name)
    os.rmdir(root / 'images' / 'ibug')
    with pytest.raises(SystemExit, match=r'300W folder ibug not found: .*'):
        converter('convert_300w').main([str(root)])


# ---------------------------------------------------------------- AFLW
@pytest.fixture
def aflw_raw(tmp_path):
    """8 faces in 5 images; 5 train, 3 test (2 of them frontal)."""
    rng = np.random.default_rng(2)
    root = tmp_path / 'aflw'
    n = 8
    names = [f'{d}/image{i:05d}.jpg' for i, d in enumerate([0, 2, 3, 0, 2])]
    for name in names:
        write_image(root / 'images' / 'flickr' / name, 64, 90)
    face_names = [names[i % 5] for i in range(n)]
    pts = np.stack([face_points(rng, 19, (45.0, 32.0)) for _ in range(n)])
    data = np.concatenate([pts[..., 0], pts[..., 1]], 1)  # 19 x, then 19 y
    x1 = rng.uniform(20, 25, n)
    y1 = rng.uniform(10, 15, n)
    boxes = np.stack([x1, x1 + 40, y1, y1 + 30], 1)  # x1 x2 y1 y2
    mask = np.ones((n, 19))
    ra = rng.permutation(n) + 1
    test_faces = ra[5:] - 1
    mask[test_faces[0], 3] = 0  # one test face is not frontal
    mask[ra[0] - 1, 7] = 0  # nor is a training face
    mat = root / 'AFLWinfo_release.mat'
    savemat(
        str(mat),
        dict(
            nameList=np.array(face_names, dtype=object).reshape(-1, 1),
            data=data,
            bbox=boxes,
            mask_new=mask,
            ra=ra.reshape(1, -1).astype(np.float64),
        ),
    )
    return root, dict(pts=pts, boxes=boxes, ra=ra, names=face_names)


def test_aflw_converts_and_loads_in_mmpose(aflw_raw):
    root, raw = aflw_raw
    paths = converter('convert_aflw').main([str(root), '--num-train', '5'])
    assert set(paths) == {'train', 'test', 'test_frontal'}
    for split, num in dict(train=5, test=3, test_frontal=2).items():
        ds = load_dataset(
            'AFLWDataset', root, f'face_landmarks_aflw_{split}.json'
        )
        assert len(ds) == num
    test_ids = raw['ra'][5:] - 1  # 0-based face indices, in test order
    ds = load_dataset('AFLWDataset', root, 'face_landmarks_aflw_test.json')
    infos = sorted(
        (ds.get_data_info(i) for i in range(3)), key=lambda d: d['id']
    )
    for info, face in zip(infos, test_ids):
        np.testing.assert_allclose(
            info['keypoints'][0], raw['pts'][face], atol=1e-4
        )
        assert info['img_path'].endswith('flickr/' + raw['names'][face])
        x1, x2, y1, y2 = raw['boxes'][face]
        size = np.sqrt((x2 - x1) * (y2 - y1))
        assert info['box_size'] == pytest.approx(size)
        # MMPose's square crop box has side box_size (norm='bbox').
        assert info['bbox_scale'][0, 0] == pytest.approx(size, rel=1e-5)
        np.testing.assert_allclose(
            info['bbox_center'][0], [(x1 + x2) / 2, (y1 + y2) / 2], rtol=1e-5
        )
    test = json.load(open(paths['test']))
    frontal = [a['attributes']['frontal'] for a in test['annotations']]
    assert frontal == [0, 1, 1]
    ann = test['annotations'][0]
    assert ann['bbox'][2:] == pytest.approx([40.0, 30.0])
    assert ann['visible'][3] == 0
    assert ann['keypoints'][3 * 3 + 2] == 1  # hidden but labelled
    assert ann['keypoints'][2] == 2
    assert ann['num_keypoints'] == 19


def test_aflw_errors(aflw_raw):
    root, _ = aflw_raw
    tool = converter('convert_aflw')
    with pytest.raises(SystemExit, match=r'num_train must be in \[1, 7\]'):
        tool.main([str(root), '--num-train', '8'])
    with pytest.raises(SystemExit, match='AFLWinfo_release.mat'):
        tool.main([str(root / 'nowhere')])
    mat = str(root / 'AFLWinfo_release.mat')
    from scipy.io import loadmat

    fields = {k: v for k, v in loadmat(mat).items() if not k.startswith('_')}
    savemat(mat, dict(fields, ra=np.ones((1, 8))))
    with pytest.raises(SystemExit, match="'ra' must be a permutation"):
        tool.main([str(root), '--num-train', '5'])
    savemat(mat, dict(fields, data=fields['data'][:, :30]))
    with pytest.raises(SystemExit, match=r"'data' has shape \(8, 30\)"):
        tool.main([str(root), '--num-train', '5'])


# ------------------------------------------ non-finite values, overwrite
def test_pts_non_finite_point_names_file_and_line(tmp_path):
    path = tmp_path / 'a.pts'
    path.write_text('version: 1\nn_points: 2\n{\n1 2\nnan 4\n}\n')
    with pytest.raises(ValueError, match=r'a.pts:5: point 2 is not finite'):
        read_pts(str(path), num_points=2)
    path.write_text('version: 1\nn_points: 2\n{\n1 2\n3 -inf\n}\n')
    with pytest.raises(ValueError, match=r"a.pts:5: point 2 .*'3 -inf'"):
        read_pts(str(path), num_points=2)


def test_wflw_non_finite_field_names_line_and_field():
    good = ['1.0'] * 196 + ['0', '0', '9', '9'] + ['0'] * 6 + ['x.jpg']
    bad = list(good)
    bad[5] = 'nan'
    with pytest.raises(
        ValueError, match=r"l.txt:7: field 6 'nan' \(y of point 2\) is not"
    ):
        parse_wflw_line(' '.join(bad), 'l.txt:7')
    bad = list(good)
    bad[198] = 'inf'
    with pytest.raises(
        ValueError, match=r"l.txt:8: field 199 'inf' \(x_max of the box\)"
    ):
        parse_wflw_line(' '.join(bad), 'l.txt:8')


def test_wflw_bad_test_list_writes_no_train_file(wflw_raw):
    root, _, _ = wflw_raw
    lists = root / 'WFLW_annotations' / 'list_98pt_rect_attr_train_test'
    path = lists / 'list_98pt_rect_attr_test.txt'
    lines = path.read_text().splitlines()
    fields = lines[2].split()
    fields[0] = 'nan'
    lines[2] = ' '.join(fields)
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(SystemExit, match='list_98pt_rect_attr_test.txt:3'):
        converter('convert_wflw').main([str(root)])
    assert not (root / 'annotations').exists()


def _aflw_with(root, key, row, col, value):
    from scipy.io import loadmat

    mat = str(root / 'AFLWinfo_release.mat')
    fields = {k: v for k, v in loadmat(mat).items() if not k.startswith('_')}
    fields[key] = fields[key].astype(np.float64)
    fields[key][row, col] = value
    savemat(mat, fields)


@pytest.mark.parametrize(
    'key, col, value', [('bbox', 2, np.nan), ('data', 20, np.inf)]
)
def test_aflw_non_finite_names_record_and_field(aflw_raw, key, col, value):
    root, raw = aflw_raw
    _aflw_with(root, key, 3, col, value)
    with pytest.raises(SystemExit) as e:
        converter('convert_aflw').main([str(root), '--num-train', '5'])
    assert (
        f'AFLWinfo_release.mat: record 4 ({raw["names"][3]!r}), field '
        f'{key!r} column {col + 1}: {value} is not a finite number'
    ) in str(e.value)
    assert not (root / 'annotations').exists()


def test_write_coco_refuses_non_finite_faces(tmp_path):
    from mmaniso.datasets.converters import Face, write_coco

    def face(**kw):
        fields = dict(
            file_name='a.jpg',
            keypoints=np.ones((3, 2)),
            bbox=[0, 0, 2, 2],
            center=[1, 1],
            scale=0.01,
            source='list.txt:4',
        )
        return Face(**dict(fields, **kw))

    path = tmp_path / 'out.json'
    bad_points = np.ones((3, 2))
    bad_points[1, 0] = np.nan
    for bad, field in [
        (face(keypoints=bad_points), 'keypoints'),
        (face(bbox=[0, 0, np.inf, 2]), 'bbox'),
        (face(center=[np.nan, 1]), 'center'),
        (face(scale=np.inf), 'scale'),
        (face(extra=dict(box_size=np.nan)), 'box_size'),
    ]:
        with pytest.raises(
            ValueError,
            match=f'list.txt:4: field "{field}" of the face of \'a.jpg\' '
            'holds a NaN or infinite value',
        ):
            write_coco([face(), bad], {'a.jpg': (4, 4)}, str(path))
        assert not path.exists()


def test_write_coco_refuses_to_overwrite(tmp_path):
    from mmaniso.datasets.converters import Face, write_coco

    face = Face('a.jpg', np.ones((3, 2)), [0, 0, 2, 2], [1, 1], 0.01)
    path = tmp_path / 'out.json'
    path.write_text('keep')
    with pytest.raises(FileExistsError, match=rf'{path}; pass --overwrite'):
        write_coco([face], {'a.jpg': (4, 4)}, str(path))
    assert path.read_text() == 'keep'
    write_coco([face], {'a.jpg': (4, 4)}, str(path), overwrite=True)
    assert len(json.load(open(path))['annotations']) == 1


@pytest.mark.parametrize(
    'tool, raw, args, first',
    [
        ('convert_wflw', 'wflw_raw', [], 'face_landmarks_wflw_train.json'),
        ('convert_300w', 'w300_raw', [], 'face_landmarks_300w_train.json'),
        (
            'convert_aflw',
            'aflw_raw',
            ['--num-train', '5'],
            'face_landmarks_aflw_train.json',
        ),
    ],
)
def test_converters_refuse_to_overwrite_without_flag(
    request, tool, raw, args, first
):
    root = request.getfixturevalue(raw)[0]
    main = converter(tool).main
    paths = main([str(root)] + args)
    train = root / 'annotations' / first
    train.write_text('edited by hand')
    with pytest.raises(SystemExit) as e:
        main([str(root)] + args)
    message = str(e.value)
    assert str(train) in message and '--overwrite' in message
    assert all(p in message for p in paths.values())  # every existing one
    assert train.read_text() == 'edited by hand'
    assert main([str(root), '--overwrite'] + args) == paths
    assert json.load(open(train))['annotations']


# ------------------------------- bounds, images and encodings of inputs
def _wflw_list(root, split='train'):
    return (
        root
        / 'WFLW_annotations'
        / 'list_98pt_rect_attr_train_test'
        / f'list_98pt_rect_attr_{split}.txt'
    )


def _edit_wflw_line(root, lineno, field, value, split='train'):
    path = _wflw_list(root, split)
    lines = path.read_text().splitlines()
    fields = lines[lineno - 1].split()
    fields[field] = value
    lines[lineno - 1] = ' '.join(fields)
    path.write_text('\n'.join(lines) + '\n')
    return path


@pytest.mark.parametrize(
    'field, value, expected',
    [
        # The attack: a point at -99999 passed the converter.
        (0, '-99999', 'field "keypoints" puts point 0 at (-1e+05'),
        (3, '1e300', 'field "keypoints" puts point 1 at ('),
        (197, '-1e300', 'field "bbox"'),
    ],
)
def test_wflw_out_of_bounds_values_are_refused(
    wflw_raw, field, value, expected
):
    root, _, _ = wflw_raw
    _edit_wflw_line(root, 2, field, value)
    with pytest.raises(SystemExit) as e:
        converter('convert_wflw').main([str(root)])
    message = str(e.value)
    assert (
        "list_98pt_rect_attr_train.txt:2: the face of '0--Parade/a.jpg'"
        in (message)
    )
    assert expected in message
    assert 'nothing was written' in message
    assert not (root / 'annotations').exists()


def test_300w_point_far_outside_the_image_is_refused(w300_raw):
    root, points = w300_raw
    path = root / 'images' / 'afw' / 'img_0.pts'
    pts = points['afw/img_0.jpg'].copy()
    pts[8] = [35.0, 5000.0]  # the chin 5,000 px below a 50 px high image
    write_pts(path, pts)
    with pytest.raises(SystemExit) as e:
        converter('convert_300w').main([str(root)])
    message = str(e.value)
    assert f"{path}: the face of 'afw/img_0.jpg'" in message
    assert 'field "' in message and 'the 70x50 image' in message
    assert not (root / 'annotations').exists()


def test_aflw_point_outside_the_released_box_is_refused(aflw_raw):
    root, raw = aflw_raw
    # Point 4 of record 3 goes 200 px right of its 40 x 30 box.
    x2 = raw['boxes'][2, 1]
    _aflw_with(root, 'data', 2, 4, x2 + 200.0)
    with pytest.raises(SystemExit) as e:
        converter('convert_aflw').main([str(root), '--num-train', '5'])
    message = str(e.value)
    assert f'record 3 ({raw["names"][2]!r})' in message
    assert 'field "keypoints" puts point 4' in message
    assert not (root / 'annotations').exists()


@pytest.mark.parametrize('value', [-1.0, 0.5, 7.0])
def test_aflw_visibility_other_than_0_or_1_is_refused(aflw_raw, value):
    root, raw = aflw_raw
    _aflw_with(root, 'mask_new', 5, 2, value)
    # Same check as the non-finite test above, for the visibility message.
    with pytest.raises(SystemExit) as e:
        converter('convert_aflw').main([str(root), '--num-train', '5'])
    assert (
        f"record 6 ({raw['names'][5]!r}), field 'mask_new' column 3: "
        f'{value:g} is not a visibility flag'
    ) in str(e.value)


def test_wflw_truncated_image_is_refused(wflw_raw):
    root, _, _ = wflw_raw
    image = root / 'images' / '0--Parade' / 'b.jpg'
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (60, 80, 3), dtype=np.uint8)
    assert cv2.imwrite(str(image), pixels)
    data = image.read_bytes()
    image.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(SystemExit) as e:
        converter('convert_wflw').main([str(root)])
    assert f'{image}' in str(e.value)
    assert 'truncated or corrupt' in str(e.value)
    assert not (root / 'annotations').exists()


@pytest.mark.parametrize('outside', ['absolute', '../outside.jpg'])
def test_wflw_image_path_outside_the_image_folder_is_refused(
    wflw_raw, outside
):
    root, _, _ = wflw_raw
    write_image(root / 'outside.jpg', 60, 80)
    name = str(root / 'outside.jpg') if outside == 'absolute' else outside
    _edit_wflw_line(root, 1, -1, name)
    with pytest.raises(SystemExit) as e:
        converter('convert_wflw').main([str(root)])
    assert f'list_98pt_rect_attr_train.txt:1: the face of {name!r}' in str(
        e.value
    )
    assert 'leaves the image folder' in str(e.value)
    assert not (root / 'annotations').exists()


def test_wflw_list_not_utf8_names_file_and_fix(wflw_raw):
    root, _, _ = wflw_raw
    path = _wflw_list(root, 'test')
    path.write_bytes(path.read_bytes().replace(b'c.jpg', b'\xe7.jpg'))
    with pytest.raises(SystemExit) as e:
        converter('convert_wflw').main([str(root)])
    message = str(e.value)
    assert f'{path}: the WFLW landmark list is not UTF-8 text' in message
    assert 're-save it as UTF-8' in message


def test_pts_not_utf8_names_file(w300_raw):
    root, _ = w300_raw
    path = root / 'images' / 'ibug' / 'img_1.pts'
    path.write_bytes(b'version: 1 \xff\n' + path.read_bytes())
    with pytest.raises(SystemExit, match=r'img_1.pts: the iBUG .pts file is'):
        converter('convert_300w').main([str(root)])


class _DiskFull:
    """``open`` whose ``fail_at``-th file opened for writing takes 8,192
    characters and then fails as a full disk does."""

    def __init__(self, fail_at):
        self.fail_at = fail_at
        self.count = 0

    def __call__(self, path, mode='r', *args, **kwargs):
        import builtins

        f = builtins.open(path, mode, *args, **kwargs)
        if not any(m in mode for m in 'wxa'):
            return f
        self.count += 1
        if self.count != self.fail_at:
            return f
        real_write = f.write

        def write(text):
            real_write(text[:8192])
            f.flush()
            raise OSError(28, 'No space left on device')

        f.write = write
        return f


@pytest.mark.parametrize('first_run', [False, True])
def test_converter_failure_after_the_first_file_writes_nothing(
    wflw_raw, monkeypatch, first_run
):
    from mmaniso.datasets.converters import coco

    root, _, _ = wflw_raw
    tool = converter('convert_wflw')
    out = root / 'annotations'
    before = {}
    if first_run:
        tool.main([str(root)])
        before = {p.name: p.read_bytes() for p in out.iterdir()}
        # An edit of the list, then a re-run that fails on the 2nd file.
        _edit_wflw_line(root, 1, 0, '41.5')
    monkeypatch.setattr(coco, 'open', _DiskFull(fail_at=2), raising=False)
    args = [str(root)] + (['--overwrite'] if first_run else [])
    with pytest.raises(SystemExit) as e:
        tool.main(args)
    assert 'No space left on device' in str(e.value)
    assert 'nothing was written' in str(e.value)
    if not first_run:
        assert not out.exists()  # not even the folder
        return
    after = {p.name: p.read_bytes() for p in out.iterdir()}
    # No partial file, no temporary left behind, no mix of new and old.
    assert after == before


def test_missing_input_names_what_and_where(tmp_path):
    from mmaniso.datasets.converters.coco import require_dir, require_file

    folder, file = tmp_path / 'images', tmp_path / 'list.txt'
    with pytest.raises(FileNotFoundError) as e:
        require_dir(str(folder), 'WFLW images', 'unpack WFLW_images.tar.gz')
    assert str(e.value) == (
        f'WFLW images not found: expected the folder {folder} '
        '(unpack WFLW_images.tar.gz)'
    )
    with pytest.raises(FileNotFoundError, match=r'the file .*list\.txt$'):
        require_file(str(file), 'the list')
    folder.mkdir()
    file.write_text('')
    assert require_dir(str(folder), 'x') == str(folder)
    assert require_file(str(file), 'x') == str(file)
    # Each refuses the other kind.
    with pytest.raises(FileNotFoundError, match='expected the folder'):
        require_dir(str(file), 'x')
    with pytest.raises(FileNotFoundError, match='expected the file'):
        require_file(str(folder), 'x')
