"""Sphinx configuration of the course book (tools/build_book.py builds it; see its docstring).

The pages are notebooks prepared by tools/build_book.py (released lessons with the
instructor's outputs); MyST-NB renders their stored outputs and never executes them.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent))
from cnn_course import links  # noqa: E402

project = "Convolutional neural networks, from first principles to a GPU"
author = "the cnn-course authors"
copyright = "the cnn-course authors, MIT licence"
extensions = ["myst_nb"]
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
nb_execution_mode = "off"  # outputs come from the instructor's run, stored in the pages
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
suppress_warnings = ["myst.header", "mystnb.unknown_mime_type"]

html_theme = "sphinx_book_theme"
html_title = "CNNs from first principles"
html_copy_source = False  # no _sources/: the pages are the only copy of a lesson in the site
html_show_sourcelink = False
html_theme_options = {
    "repository_url": links.github_url(),
    "repository_branch": links.BRANCH,
    "use_repository_button": True,
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
