"""Feedback that teaches without giving the hidden tests away.

The autograded notebook holds the hidden tests (nbgrader restores locked cells
from the gradebook), and a failing test's traceback quotes the lines around the
failure. Before the feedback HTML is rendered we cut the hidden blocks out of the
source and reduce tracebacks of cells that had hidden tests to their last line:
the check's own message, which says what is wrong without quoting test code.
"""

from __future__ import annotations

from nbgrader.preprocessors import ClearHiddenTests


class HideHiddenTests(ClearHiddenTests):
    def preprocess_cell(self, cell, resources, cell_index):
        had_hidden = self.begin_test_delimeter in cell.source if cell.cell_type == "code" else False
        cell, resources = super().preprocess_cell(cell, resources, cell_index)
        if had_hidden or "HIDDEN TESTS" in cell.source:
            for output in cell.get("outputs", []):
                if output.output_type == "error":
                    output.traceback = [f"{output.ename}: {output.evalue}"]
        return cell, resources
