"""tools/normalize_notebooks.py: clean notebooks, and the course header (Colab/Binder badges, Colab setup cell)."""

import importlib.util
import os
import pathlib
import sys
import types

import nbformat
import pytest

from cnn_course import course, links

pytestmark = pytest.mark.filterwarnings("ignore:Cell is missing an id field")

ROOT = pathlib.Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("normalize_notebooks", ROOT / "tools" / "normalize_notebooks.py")
normalize = importlib.util.module_from_spec(spec)
spec.loader.exec_module(normalize)


def _draft(path: pathlib.Path, extra_cells=()) -> pathlib.Path:
    """A notebook as jupytext writes it: title, setup, a solution cell, with outputs and jupytext metadata."""
    kernel = {"name": "other", "display_name": "Other", "language": "python"}
    nb = nbformat.v4.new_notebook(metadata={"jupytext": {"formats": "py:percent"}, "kernelspec": kernel})
    setup = nbformat.v4.new_code_cell("import numpy as np", metadata={"nbgrader": {
        "grade": False, "grade_id": "setup", "locked": True, "schema_version": 3, "solution": False}})
    setup.outputs = [nbformat.v4.new_output("stream", text="hi")]
    setup.execution_count = 3
    nb.cells = [nbformat.v4.new_markdown_cell("# Lesson\n\nIntro."), setup, *extra_cells,
                nbformat.v4.new_code_cell("def f():\n    return 1\n", metadata={"tags": ["x"]})]
    for cell in nb.cells:
        cell.pop("id", None)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nb))
    return path


def _grade_ids(path):
    nb = nbformat.read(path, as_version=4)
    return [c.metadata.get("nbgrader", {}).get("grade_id") for c in nb.cells], nb


def test_header_cells_are_placed_locked_and_ungraded(tmp_path):
    path = _draft(tmp_path / "02_convolution" / "02_convolution.ipynb")
    assert normalize.main([str(path)]) == 0
    ids, nb = _grade_ids(path)
    assert ids == ["colab_badge", None, "colab_setup", "setup", None]  # badge on top, Colab setup before the first code cell
    for cell in nb.cells[0], nb.cells[2]:
        assert cell.metadata.nbgrader == {"grade": False, "grade_id": cell.metadata.nbgrader.grade_id,
                                          "locked": True, "schema_version": 3, "solution": False}
    assert nb.cells[0].cell_type == "markdown" and nb.cells[2].cell_type == "code"
    assert links.colab_url("02_convolution") in nb.cells[0].source
    assert links.binder_url("02_convolution") in nb.cells[0].source
    assert links.clone_url() in nb.cells[2].source and '"google.colab" in sys.modules' in nb.cells[2].source
    # the old duties: no outputs, no counts, only nbgrader metadata, the course kernel
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert nb.cells[-1].metadata == {} and nb.metadata == normalize.NOTEBOOK_METADATA
    nbformat.validate(nb)


def test_idempotent_and_check_mode(tmp_path, capsys):
    path = _draft(tmp_path / "03_padding_and_stride.ipynb")
    assert normalize.main(["--check", str(path)]) == 1
    assert "not normalized" in capsys.readouterr().out
    assert normalize.main([str(path)]) == 0
    once = path.read_text()
    assert normalize.main(["--check", str(path)]) == 0
    assert normalize.main([str(path)]) == 0
    assert path.read_text() == once


def test_header_is_updated_in_place_not_duplicated(tmp_path, monkeypatch):
    path = _draft(tmp_path / "04_pooling.ipynb")
    normalize.main([str(path)])
    # an author moves the header cells around and edits them; a fork changes the repository
    nb = nbformat.read(path, as_version=4)
    badge, rest = nb.cells[0], nb.cells[1:]
    badge.source = "stale badge"
    nb.cells = rest + [badge]
    path.write_text(nbformat.writes(nb))
    monkeypatch.setattr(links, "REPOSITORY", "someone/fork")
    assert normalize.main(["--check", str(path)]) == 1
    normalize.main([str(path)])
    ids, nb = _grade_ids(path)
    assert ids.count("colab_badge") == 1 and ids.count("colab_setup") == 1 and ids[0] == "colab_badge"
    assert "someone/fork" in nb.cells[0].source and "someone/fork" in nb.cells[ids.index("colab_setup")].source
    assert "cnn-course/cnn-course" not in nb.cells[0].source


def test_only_gpu_lessons_ask_for_a_gpu():
    gpu = course.gpu_lessons()
    assert gpu == {"08_cifar10_on_gpu"}
    assert "Change runtime type" in normalize.colab_setup_source("08_cifar10_on_gpu")
    assert "torch.cuda.is_available()" in normalize.colab_setup_source("08_cifar10_on_gpu")
    assert "cuda" not in normalize.colab_setup_source("02_convolution")


def test_notebooks_not_named_like_a_lesson_get_no_header(tmp_path):
    path = _draft(tmp_path / "scratch.ipynb")
    normalize.main([str(path)])
    ids, _ = _grade_ids(path)
    assert "colab_badge" not in ids and "colab_setup" not in ids


def _run_cell(source: str, namespace: dict | None = None) -> dict:
    namespace = namespace if namespace is not None else {}
    exec(compile(source, "<colab_setup>", "exec"), namespace)
    return namespace


def test_colab_setup_does_nothing_outside_colab(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    for lesson in ("02_convolution", "08_cifar10_on_gpu"):
        _run_cell(normalize.colab_setup_source(lesson))
    assert list(tmp_path.iterdir()) == [] and capsys.readouterr().out == ""


def test_colab_setup_on_colab_prepares_the_folder_and_is_idempotent(tmp_path, monkeypatch, capsys):
    # A stand-in for the clone on Colab: the cell finds it, so it neither clones nor installs.
    repo = tmp_path / "clone"
    (repo / "lessons" / "02_convolution").mkdir(parents=True)
    (repo / "lessons" / "02_convolution" / "02_convolution.ipynb").write_text("{}")
    (repo / "lessons" / "02_convolution" / "weights.npz").write_bytes(b"w")
    (repo / "lessons" / "02_convolution" / "images").mkdir()
    (repo / "lessons" / "02_convolution" / "images" / "a.png").write_bytes(b"png")
    (repo / "data").mkdir()
    (repo / "data" / "README.md").write_text("data")
    work = tmp_path / "content"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setitem(sys.modules, "google", types.ModuleType("google"))
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    source = normalize.colab_setup_source("02_convolution").replace(normalize.COLAB_CLONE, str(repo))
    assert "subprocess.run" in source  # (the clone and pip install are skipped here because both exist)
    for _ in range(2):
        _run_cell(source)
        assert sorted(os.listdir(work)) == ["data", "images", "weights.npz"]
        assert (work / "data" / "README.md").read_text() == "data"
        assert (work / "images" / "a.png").read_bytes() == b"png"
    assert capsys.readouterr().out.count("Colab setup done") == 2


def test_lesson_02_carries_the_current_header():
    path = ROOT / "solutions" / "02_convolution" / "02_convolution.ipynb"
    assert normalize.main(["--check", str(path)]) == 0
    ids, _ = _grade_ids(path)
    assert ids[0] == "colab_badge" and "colab_setup" in ids


@pytest.mark.parametrize("lesson", [lesson.id for lesson in course.ALL])
def test_every_cataloged_lesson_gets_a_valid_setup_cell(lesson):
    compile(normalize.colab_setup_source(lesson), lesson, "exec")
    assert f'"lessons", "{lesson}"' in normalize.colab_setup_source(lesson)
