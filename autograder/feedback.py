"""Feedback that teaches without giving the hidden tests away.

The autograded notebook holds the hidden tests (nbgrader restores locked cells
from the gradebook), and a failing test's traceback quotes the lines around the
failure. Before the feedback HTML is rendered we cut the hidden blocks out of the
source and reduce tracebacks of cells that had hidden tests to their last line:
the check's own message, which says what is wrong without quoting test code.

The page is rendered by :class:`FeedbackExporter`: nbconvert's HTML exporter without its
BeautifulSoup pass, about half the time of each page.
"""

from __future__ import annotations

import re

from nbconvert.exporters import HTMLExporter, TemplateExporter
from nbconvert.filters.highlight import Highlight2HTML
from nbconvert.filters.widgetsdatatypefilter import WidgetsDataTypeFilter
from nbgrader.preprocessors import ClearHiddenTests

_IMG_WITHOUT_ALT = re.compile(r"<img(?![^>]*\salt=)")
NO_ALT = "No description has been provided for this image"  # nbconvert's words


class HideHiddenTests(ClearHiddenTests):
    def preprocess_cell(self, cell, resources, cell_index):
        had_hidden = self.begin_test_delimeter in cell.source if cell.cell_type == "code" else False
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if had_hidden or "HIDDEN TESTS" in cell.source:
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources


class FeedbackExporter(HTMLExporter):
    """nbconvert's HTML exporter minus the pass that parses and re-serialises the whole page with BeautifulSoup
    (about half the time of a feedback page, every student, every lesson) to give images without alt text
    one and to make JupyterLab-template cells focusable. nbgrader's feedback template is the classic one, which
    has no such cells; the alt text is added here, by a pattern. The rest is HTMLExporter.from_notebook_node."""

    def from_notebook_node(self, nb, resources=None, **kw):
        language = nb.metadata.get("language_info", {})
        lexer = language.get("pygments_lexer", language.get("name"))
        self.register_filter("highlight_code", self.filters.get("highlight_code",
                                                                Highlight2HTML(pygments_lexer=lexer, parent=self)))
        resources = self._init_resources(resources)
        self.register_filter("filter_data_type", WidgetsDataTypeFilter(notebook_metadata=self._nb_metadata,
                                                                       parent=self, resources=resources))
        html, resources = TemplateExporter.from_notebook_node(self, nb, resources, **kw)
        return _IMG_WITHOUT_ALT.sub(f'<img alt="{NO_ALT}"', html), resources
