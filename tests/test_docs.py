"""The user documentation: links that resolve, and no history in it.

Fast and without Sphinx: every relative link and image of README.md and
docs/*.md points to a file that exists (and, with ``#anchor``, to a heading
of that file, by GitHub's slugs, which the docs site's MyST anchors share),
a page of the site links nothing outside docs/ (Sphinx cannot follow it),
and no user page carries a date, an issue number or "this machine".
docs/benchmarks.md and docs/study.md keep measured figures with their dates,
docs/preregistration.md its commit date; the history is CHANGELOG.md's.
"""

import glob
import os.path as osp
import re
from typing import Dict, List, Tuple
from urllib.parse import unquote

import pytest

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = osp.join(REPO, 'docs')
# Pages that carry dated measurements (or a dated commitment) by design.
DATED_PAGES = {'benchmarks.md', 'study.md', 'preregistration.md'}
# The site builds anchors for headings down to this level
# (docs/conf.py: myst_heading_anchors).
SITE_ANCHOR_DEPTH = 3
FORBIDDEN = [
    (re.compile(r'20\d\d-\d\d-\d\d'), 'a date'),
    (re.compile(r'\bissue \d', re.IGNORECASE), 'an issue number'),
    (re.compile(r'\bthis machine\b', re.IGNORECASE), '"this machine"'),
]

FENCE = re.compile(r'^ {0,3}(`{3,}|~{3,})')
INLINE_CODE = re.compile(r'(`+)(?:(?!\1).)+?\1')
MD_LINK = re.compile(
    r'!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?'
    r'(?:\s+"[^"]*")?\s*\)'
)
HTML_REF = re.compile(
    r'<(?:img|a)\b[^>]*?\b(?:src|href)\s*=\s*"([^"]+)"', re.IGNORECASE
)
HEADING = re.compile(r'^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$')


def _prose_lines(text: str) -> List[Tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code
    removed."""
    lines, fence = [], None
    for number, line in enumerate(text.splitlines(), 1):
        match = FENCE.match(line)
        if fence is None and match:
            fence = match.group(1)
            continue
        if fence is not None:
            if (
                match
                and match.group(1)[0] == fence[0]
                and len(match.group(1)) >= len(fence)
            ):
                fence = None
            continue
        lines.append((number, INLINE_CODE.sub('', line)))
    return lines


def github_slug(heading: str) -> str:
    """The anchor GitHub (and MyST's default slug function) gives a
    heading: markup dropped, lower case, punctuation removed, spaces to
    hyphens."""
    text = re.sub(r'!?\[([^\]]*)\]\([^)]*\)', r'\1', heading)
    text = re.sub(r'<[^>]+>', '', text)
    text = text.replace('`', '').lower()
    text = re.sub(r'[^\w\- ]', '', text)
    return text.replace(' ', '-')


def anchors_of(path: str, max_level: int = 6) -> Dict[str, int]:
    """Anchor -> heading level of a Markdown file's headings (code blocks
    skipped; a heading's code words kept, as GitHub's slugs keep them;
    repeated headings get GitHub's -1, -2 suffixes)."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    anchors: Dict[str, int] = {}
    seen: Dict[str, int] = {}
    prose = {n for n, _ in _prose_lines(text)}
    for number, line in enumerate(text.splitlines(), 1):
        if number not in prose:
            continue
        match = HEADING.match(line)
        if not match:
            continue
        level = len(match.group(1))
        slug = github_slug(match.group(2))
        if slug in seen:
            seen[slug] += 1
            slug = f'{slug}-{seen[slug]}'
        else:
            seen[slug] = 0
        if level <= max_level:
            anchors[slug] = level
    return anchors


def relative_links(path: str) -> List[Tuple[int, str]]:
    """(line, target) of every relative link and image of a Markdown file,
    outside code."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    found = []
    for number, line in _prose_lines(text):
        for pattern in (MD_LINK, HTML_REF):
            for match in pattern.finditer(line):
                target = match.group(1).strip()
                if re.match(r'^[a-z][a-z0-9+.-]*:', target, re.IGNORECASE):
                    continue  # http:, https:, mailto:
                found.append((number, target))
    return found


def link_problems(path: str, site_root: str = None) -> List[str]:
    """What is wrong with the relative links of ``path``: a missing file, a
    missing heading, or (for a page of the site under ``site_root``) a
    target outside the site or an anchor the site does not build."""
    problems = []
    here = osp.dirname(path)
    for number, target in relative_links(path):
        file_part, _, anchor = target.partition('#')
        dest = (
            osp.normpath(osp.join(here, unquote(file_part)))
            if file_part
            else path
        )
        where = f'{path}:{number}: link {target!r}'
        if not osp.exists(dest):
            problems.append(f'{where}: no file {dest}')
            continue
        if (
            site_root is not None
            and file_part
            and not dest.startswith(osp.abspath(site_root) + osp.sep)
        ):
            problems.append(
                f'{where}: points outside docs/, which the site cannot '
                'link; write the path as code (`path/to/file`) instead'
            )
            continue
        if anchor:
            if not dest.endswith('.md'):
                problems.append(f'{where}: an anchor into a non-Markdown file')
                continue
            anchors = anchors_of(dest)
            if anchor not in anchors:
                problems.append(
                    f'{where}: no heading with anchor #{anchor} in {dest} '
                    f'(its anchors: {sorted(anchors)})'
                )
            elif site_root is not None and anchors[anchor] > SITE_ANCHOR_DEPTH:
                problems.append(
                    f'{where}: #{anchor} is a level-{anchors[anchor]} '
                    f'heading; the site builds anchors down to level '
                    f'{SITE_ANCHOR_DEPTH} only'
                )
    return problems


def wording_problems(path: str) -> List[str]:
    """Dates, issue numbers and "this machine" in a user page, with the
    line (code included: a date in a transcript is still a date)."""
    with open(path, encoding='utf-8') as f:
        lines = f.read().splitlines()
    problems = []
    for number, line in enumerate(lines, 1):
        for pattern, what in FORBIDDEN:
            match = pattern.search(line)
            if match:
                problems.append(
                    f'{path}:{number}: {what} ({match.group(0)!r}); user '
                    'docs say what the software does: move history to '
                    'CHANGELOG.md, dated figures to docs/benchmarks.md'
                )
    return problems


DOC_PAGES = sorted(glob.glob(osp.join(DOCS, '*.md')))
LINK_CASES = [
    pytest.param(osp.join(REPO, 'README.md'), None, id='README.md')
] + [pytest.param(p, DOCS, id=f'docs/{osp.basename(p)}') for p in DOC_PAGES]
WORDING_CASES = [pytest.param(osp.join(REPO, 'README.md'), id='README.md')] + [
    pytest.param(p, id=f'docs/{osp.basename(p)}')
    for p in DOC_PAGES
    if osp.basename(p) not in DATED_PAGES
]


def test_docs_exist():
    assert len(DOC_PAGES) >= 10, DOC_PAGES


@pytest.mark.parametrize('path,site_root', LINK_CASES)
def test_links_resolve(path, site_root):
    problems = link_problems(path, site_root)
    assert not problems, '\n'.join(problems)


@pytest.mark.parametrize('path', WORDING_CASES)
def test_no_history_in_user_docs(path):
    problems = wording_problems(path)
    assert not problems, '\n'.join(problems)


def test_site_toctree_lists_existing_pages():
    """Every page named in docs/index.md's toctrees exists, and every page
    of docs/ is in one (Sphinx warns about orphans)."""
    with open(osp.join(DOCS, 'index.md'), encoding='utf-8') as f:
        text = f.read()
    listed = []
    for block in re.findall(r'```\{toctree\}\n(.*?)```', text, re.DOTALL):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith(':'):
                listed.append(line)
    missing = [p for p in listed if not osp.exists(osp.join(DOCS, p + '.md'))]
    assert not missing, f'docs/index.md lists missing pages: {missing}'
    pages = {osp.basename(p)[:-3] for p in DOC_PAGES} - {'index'}
    assert pages - set(listed) == set(), (
        f'pages in no toctree of docs/index.md: {pages - set(listed)}'
    )


def test_site_copies_html_images():
    """A page's ``<img>`` tags reach the built site only through MyST's
    ``html_image`` extension; without it they point at nothing there."""
    pages = [
        p
        for p in DOC_PAGES
        if any(
            target
            for _, target in relative_links(p)
            if re.search(r'\.(png|jpe?g|svg|gif)$', target)
        )
    ]
    with open(osp.join(DOCS, 'conf.py'), encoding='utf-8') as f:
        conf = f.read()
    match = re.search(
        r'^myst_enable_extensions\s*=\s*\[([^\]]*)\]', conf, re.MULTILINE
    )
    extensions = re.findall(r"'([^']+)'", match.group(1)) if match else []
    assert not pages or 'html_image' in extensions, (
        f'{[osp.basename(p) for p in pages]} show images with <img>: add '
        "'html_image' to myst_enable_extensions in docs/conf.py"
    )


# The checkers themselves, on files the tests write.


def test_slugs_follow_github():
    assert github_slug('Crop array for the device feed') == (
        'crop-array-for-the-device-feed'
    )
    assert github_slug('The method in MMPose terms') == (
        'the-method-in-mmpose-terms'
    )
    assert github_slug('Landmarks on new images: `tools/infer.py`') == (
        'landmarks-on-new-images-toolsinferpy'
    )
    assert github_slug('Train, test, multi-GPU') == 'train-test-multi-gpu'
    assert github_slug('The second stack: MMPose 1.3') == (
        'the-second-stack-mmpose-13'
    )


def test_checker_finds_broken_links(tmp_path):
    site = tmp_path / 'docs'
    site.mkdir()
    (site / 'images').mkdir()
    (site / 'images' / 'a.png').write_bytes(b'png')
    (tmp_path / 'code.py').write_text('x = 1\n')
    (site / 'other.md').write_text(
        '# Other\n\n## A section\n\n## A section\n\n#### Deep\n\n'
        '```bash\n# not a heading\n```\n',
        encoding='utf-8',
    )
    page = site / 'page.md'
    page.write_text(
        '# Page\n\n## Here\n\n'
        '[ok](other.md) [ok](other.md#a-section) [ok](other.md#a-section-1) '
        '[ok](#here) <img src="images/a.png" width="40%"> '
        '![ok](images/a.png) [web](https://example.com/x.md)\n'
        '`[in code](missing.md)`\n\n'
        '```text\n[in a block](missing.md)\n```\n',
        encoding='utf-8',
    )
    assert link_problems(str(page), str(site)) == []

    page.write_text(
        '# Page\n\n[gone](gone.md)\n<img src="images/b.png">\n'
        '[no anchor](other.md#nothing) [code block](other.md#not-a-heading)'
        '\n[outside](../code.py) [deep](other.md#deep) [self](#nowhere)\n',
        encoding='utf-8',
    )
    problems = '\n'.join(link_problems(str(page), str(site)))
    assert "'gone.md': no file" in problems
    assert "'images/b.png': no file" in problems
    assert 'no heading with anchor #nothing' in problems
    assert 'no heading with anchor #not-a-heading' in problems
    assert "'../code.py': points outside docs/" in problems
    assert 'level-4 heading' in problems
    assert 'no heading with anchor #nowhere' in problems
    # The same links from the repository's top (as README.md): outside
    # docs/ is allowed there, and GitHub anchors any heading level.
    readme = tmp_path / 'README.md'
    readme.write_text(
        '[code](code.py) [deep](docs/other.md#deep)\n', encoding='utf-8'
    )
    assert link_problems(str(readme)) == []


def test_checker_finds_history(tmp_path):
    page = tmp_path / 'page.md'
    page.write_text(
        'Fine text about 2020 and version 1.3.2.\n'
        'Issues are filed on GitHub.\n',
        encoding='utf-8',
    )
    assert wording_problems(str(page)) == []
    page.write_text(
        'Measured 2026-12-07.\nBefore Issue 24 it did not.\n'
        'On this machine it took 5 s.\n',
        encoding='utf-8',
    )
    problems = wording_problems(str(page))
    assert len(problems) == 3, problems
    assert ":1: a date ('2026-12-07')" in problems[0]
    assert ":2: an issue number ('Issue 2')" in problems[1]
    assert ':3: "this machine"' in problems[2]
