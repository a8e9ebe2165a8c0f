"""Sphinx configuration of the course book (tools/build_book.py builds it; see its docstring).

The pages are notebooks prepared by tools/build_book.py (released lessons with the
instructor's outputs); MyST-NB renders their stored outputs and never executes them.

Math is typeset in the reader's browser by MathJax 2.7, served from the site itself (copied
from the jupyter-server-mathjax package at the end of the build), so that the book needs
no CDN: it renders offline, and the browser test can check it.
"""

import pathlib
import shutil
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

MATHJAX_DIR = "_static/mathjax"
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full"  # relative to _static
mathjax2_config = {
    # Sphinx marks math with the class "math" and the page body with "tex2jax_ignore"; outputs are "output_area".
    "tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]], "processEscapes": True,
                "processClass": "math|output_area", "ignoreClass": "tex2jax_ignore|mathjax_ignore|document"},
    "HTML-CSS": {"availableFonts": ["STIX-Web"], "preferredFont": "STIX-Web", "webFont": "STIX-Web", "imageFont": None},
    "menuSettings": {"zoom": "None"}, "showMathMenu": False,
}
# What MathJax loads for TeX with HTML-CSS output; not the accessibility explorer, SVG output or other languages.
MATHJAX_SKIP = ("extensions/a11y", "jax/output/SVG", "unpacked")


def copy_mathjax(app, exception):
    if exception is not None or app.builder.format != "html":
        return
    import jupyter_server_mathjax

    static = pathlib.Path(jupyter_server_mathjax.__file__).parent / "static"
    target = pathlib.Path(app.outdir) / MATHJAX_DIR
    for path in static.rglob("*"):
        relative = path.relative_to(static).as_posix()
        if not path.is_file() or relative.startswith(MATHJAX_SKIP):
            continue
        if relative.startswith("localization/") and not relative.startswith("localization/en/"):
            continue
        (target / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target / relative)


def setup(app):
    app.connect("build-finished", copy_mathjax)


html_theme = "sphinx_book_theme"
html_title = "CNNs from first principles"
html_copy_source = False  # no _sources/: the pages are the only copy of a lesson in the site
html_show_sourcelink = False
html_theme_options = {
    "repository_url": links.github_url(),
    "repository_branch": links.BRANCH,
    "use_repository_button": True,
    "use_download_button": False,  # it would offer _sources/, which html_copy_source leaves out
    "show_toc_level": 2,
    "home_page_in_toc": True,
}
