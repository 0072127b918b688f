"""Sphinx configuration of the mmaniso documentation (``make docs``)."""

import os
import sys
import warnings

sys.path.insert(0, os.path.abspath('..'))

# The third-party import-time notices the tools filter too; a docs build
# with warnings as errors must not stop on them.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated')
warnings.filterwarnings('ignore', message='The metainfo config file')

from mmaniso.version import __version__  # noqa: E402

project = 'mmaniso'
author = 'the mmaniso developers'
copyright = 'the mmaniso developers'
release = __version__
version = __version__

extensions = [
    'myst_parser',
    'sphinx.ext.autodoc',
    'sphinx.ext.napoleon',
    'sphinx.ext.mathjax',
    'sphinx.ext.viewcode',
]
source_suffix = {'.rst': 'restructuredtext', '.md': 'markdown'}
root_doc = 'index'
exclude_patterns = ['_build', 'Thumbs.db', '.DS_Store']
# Headings become link targets, so "page.md#a-heading" links resolve.
myst_heading_anchors = 3
# html_image: <img> tags become Sphinx images, copied into the built site.
myst_enable_extensions = ['dollarmath', 'html_image']

autodoc_member_order = 'bysource'
autodoc_typehints = 'description'
autodoc_mock_imports = []
napoleon_google_docstring = True
napoleon_numpy_docstring = False
# Attributes as fields: a NamedTuple's fields are documented once.
napoleon_use_ivar = True

html_theme = 'sphinx_rtd_theme'
html_title = f'mmaniso {release}'
# MathJax is loaded from a CDN by the browser reading the built pages; the
# build itself downloads nothing.
