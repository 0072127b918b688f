"""tools/misc/learned_forms_once.py: what it trains and what it reads."""

import json
import os
import os.path as osp

from conftest import REPO, load_tool

SCRIPT = osp.join(REPO, 'tools', 'misc', 'learned_forms_once.py')


def _tool():
    return load_tool(SCRIPT)


def test_every_form_is_a_config_of_the_study():
    tool = _tool()
    for config in tool.FORMS.values():
        assert osp.isfile(osp.join(REPO, config)), config


def test_logged_scales_are_read_first_and_last(tmp_path):
    vis = tmp_path / '20260101_000000' / 'vis_data'
    os.makedirs(vis)
    lines = [
        dict(loss=1.0, scale_along=5.0, scale_across=3.0, step=20),
        dict(NME=6.0, step=1),
        dict(loss=0.5, scale_along=1.6, scale_across=1.0, step=40),
    ]
    (vis / 'scalars.json').write_text(
        '\n'.join(json.dumps(x) for x in lines) + '\n'
    )
    first, last = _tool().logged_scales(str(tmp_path))
    assert first == dict(scale_along=5.0, scale_across=3.0)
    assert last == dict(scale_along=1.6, scale_across=1.0)
    assert _tool().logged_scales(str(tmp_path / 'none')) == (None, None)
