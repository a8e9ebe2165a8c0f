"""The instructor figures: committed PNGs match their code, lessons show them everywhere, demos fall back to them."""

import importlib.util
import pathlib

import nbformat
import pytest

from autograder.release import StudentVersion
from cnn_course import links

ROOT = pathlib.Path(__file__).resolve().parent.parent


def _tool():
    spec = importlib.util.spec_from_file_location("make_figures", ROOT / "tools" / "make_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_figures_are_what_their_code_draws():
    assert _tool().problems(_tool().lessons_with_figures(), write=False) == []


def test_a_stale_missing_or_orphaned_figure_is_reported(tmp_path, monkeypatch):
    tool = _tool()
    (tmp_path / "tools" / "figures").mkdir(parents=True)
    (tmp_path / "tools" / "figures" / "02_demo.py").write_text(
        "import matplotlib.pyplot as plt\n"
        "def figure_dot():\n    fig, ax = plt.subplots(figsize=(1, 1))\n    ax.plot([0], [0], 'o')\n    return fig\n")
    lesson = tmp_path / "solutions" / "02_demo"
    lesson.mkdir(parents=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("![a dot](figures/dot.png) ![x](figures/gone.png)")])
    nbformat.write(nb, lesson / "02_demo.ipynb")
    monkeypatch.setattr(tool, "ROOT", tmp_path)
    monkeypatch.setattr(tool, "FIGURES", tmp_path / "tools" / "figures")
    found = tool.problems(["02_demo"], write=False)
    assert any("dot.png: missing" in f for f in found) and any("gone.png, which no figure" in f for f in found)
    tool.problems(["02_demo"], write=True)
    first = (lesson / "figures" / "dot.png").read_bytes()
    assert first.startswith(b"\x89PNG")
    tool.problems(["02_demo"], write=True)
    assert (lesson / "figures" / "dot.png").read_bytes() == first  # deterministic: a redraw changes no byte
    (lesson / "figures" / "dot.png").write_bytes(first + b"x")
    (lesson / "figures" / "old.png").write_bytes(first)
    found = tool.problems(["02_demo"], write=False)
    assert any("dot.png: stale" in f for f in found) and any("old.png: no figure_old()" in f for f in found)


def test_the_student_notebook_shows_each_figure_from_the_repository():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("See ![grid](figures/grid.png) and [x](other.png)."),
                                         nbformat.v4.new_code_cell("print('figures/grid.png')")])
    nb, _ = StudentVersion().preprocess(nb, {"nbgrader": {"assignment": "02_convolution"}})
    assert nb.cells[0].source == (f"See ![grid]({links.raw_url('lessons/02_convolution/figures/grid.png')}) "
                                  "and [x](other.png).")
    assert nb.cells[1].source == "print('figures/grid.png')"


@pytest.mark.parametrize("lesson", _tool().lessons_with_figures())
def test_released_lesson_ships_and_links_every_figure(lesson):
    solution, released = ROOT / "solutions" / lesson, ROOT / "lessons" / lesson
    for png in (solution / "figures").glob("*.png"):
        assert (released / "figures" / png.name).read_bytes() == png.read_bytes()
    text = (released / f"{lesson}.ipynb").read_text(encoding="utf-8")
    for link in _tool().referenced(lesson):
        assert links.raw_url(f"lessons/{lesson}/{link}") in text


def test_a_demo_falls_back_to_the_instructor_figure(tmp_path, monkeypatch, capsys):
    from IPython.display import Image

    from cnn_course import plots

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    monkeypatch.chdir(tmp_path)
    plots.instructor_figure("02_convolution", "grid")  # not beside the notebook: the repository's copy
    assert isinstance(shown[-1], Image) and shown[-1].url == links.raw_url("lessons/02_convolution/figures/grid.png")
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "grid.png").write_bytes(_tool().render(_dot))
    plots.instructor_figure("02_convolution", "grid")
    assert shown[-1].data == (tmp_path / "figures" / "grid.png").read_bytes()
    assert "not written yet" in capsys.readouterr().out


def _dot():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1, 1))
    ax.plot([0], [0], "o")
    return fig
