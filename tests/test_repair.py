"""autograder/repair.py on every lesson, without a kernel: honest-but-messy notebooks come out as the
clean one (same graded cells, same code, a true note), and a wrong answer stays wrong."""

import pathlib
import shutil

import nbformat
import pytest
from nbgrader.nbgraderformat import MetadataValidator
from nbgrader.preprocessors import DeduplicateIds

from autograder import repair
from autograder.config import lesson_ids
from tests import messy
from tests.notebook_runner import solution_cells

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSONS = [x for x in lesson_ids(ROOT) if solution_cells(x)]


def wrong(lesson: str) -> dict[str, str]:
    """The first function answers None before doing anything (its marker lines stay, as a student's would)."""
    s, _ = messy.first_exercise(messy.student_notebook(lesson))
    name = messy.gid(messy.student_notebook(lesson).cells[s])
    source = solution_cells(lesson)[name]
    return {name: source.replace("### BEGIN SOLUTION", "### BEGIN SOLUTION\n    return None", 1)}


def graded(path: pathlib.Path) -> list[tuple[str, str, str]]:
    """What nbgrader will grade and run as the student's: (grade id, cell type, code) of every marked cell."""
    nb = nbformat.read(path, as_version=4)
    return [(messy.gid(c), c.cell_type, repair.code_of(c.source)) for c in nb.cells if messy.gid(c)]


def solutions_precede_their_tests(path: pathlib.Path, lesson: str) -> bool:
    """Every test cell runs after every solution cell that comes before it in the release."""
    release = [messy.gid(c) for c in nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4).cells]
    where = {messy.gid(c): i for i, c in enumerate(nbformat.read(path, as_version=4).cells) if messy.gid(c)}
    solutions = set(solution_cells(lesson))
    return all(where[s] < where[t] for t in where if t.startswith("test_")
               for s in release[:release.index(t)] if s in solutions)


def handed_in(tmp_path, lesson: str, kind: str, student: str, **replace) -> tuple[pathlib.Path, list[str]]:
    """Hand in ``kind``, then find and repair it as grade_one does; the repaired notebook and the notes."""
    messy.put(tmp_path, student, lesson, kind, **replace)
    folder = tmp_path / student / lesson
    notebook, why = repair.find_notebook(folder, lesson)
    assert notebook is not None, why
    notes = repair.repair_submission(notebook, lesson, ROOT / "lessons" / lesson / f"{lesson}.ipynb",
                                     ROOT / "solutions" / lesson / f"{lesson}.ipynb")
    assert [p.name for p in folder.glob("*.ipynb")] == [f"{lesson}.ipynb"]
    return folder / f"{lesson}.ipynb", notes


@pytest.mark.parametrize("lesson", LESSONS)
def test_every_messy_kind_repairs_to_the_clean_notebook_with_a_true_note(tmp_path, lesson):
    clean, notes = handed_in(tmp_path, lesson, "clean", "clean")
    assert notes == []
    expected = graded(clean)
    for kind in messy.KINDS:
        path, notes = handed_in(tmp_path, lesson, kind, kind)
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        DeduplicateIds().preprocess(nb, {})
        MetadataValidator().validate_nb(nb)  # what failed with "SchemaTooOldError" before
        if kind in messy.REORDERED:
            assert sorted(graded(path)) == sorted(expected), (lesson, kind)
            assert solutions_precede_their_tests(path, lesson), (lesson, kind)
        else:
            assert graded(path) == expected, (lesson, kind)
        note = messy.expected_note(kind, lesson)
        if note is None:
            assert notes == [], (lesson, kind, notes)
        else:
            assert any(note in n for n in notes), (lesson, kind, notes)
        assert not any("altered" in n or "deleted" in n for n in notes), (lesson, kind, notes)


@pytest.mark.parametrize("lesson", LESSONS)
def test_a_wrong_answer_in_a_messy_notebook_stays_wrong(tmp_path, lesson):
    clean_wrong, _ = handed_in(tmp_path, lesson, "clean", "clean", **wrong(lesson))
    right, _ = handed_in(tmp_path, lesson, "clean", "right")
    assert graded(clean_wrong) != graded(right)
    for kind in messy.KINDS:
        path, _ = handed_in(tmp_path, lesson, kind, kind, **wrong(lesson))
        if kind in messy.REORDERED:
            assert sorted(graded(path)) == sorted(graded(clean_wrong)), (lesson, kind)
        else:
            assert graded(path) == graded(clean_wrong), (lesson, kind)


def test_altered_means_the_code_changed(tmp_path):
    lesson = "02_convolution"
    nb = messy.student_notebook(lesson)
    _, t = messy.first_exercise(nb)
    nb.cells[t].source = nb.cells[t].source.replace("expect", "# expect", 1)
    release = nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
    notes = repair.repair(nb, release)
    assert notes == [f"test cells were altered and restored: {messy.gid(nb.cells[t])}"]
    assert nb.cells[t].source == release.cells[t].source


def test_several_notebooks_name_the_one_graded_or_say_why_none(tmp_path):
    lesson = "02_convolution"
    folder = tmp_path / lesson
    folder.mkdir()
    for name in ("notes.ipynb", f"Copy of {lesson}.ipynb"):
        (folder / name).write_text("{}")
    assert repair.find_notebook(folder, lesson) == (folder / f"Copy of {lesson}.ipynb",
                                                    f"graded 'Copy of {lesson}.ipynb' (no {lesson}.ipynb)")
    (folder / f"{lesson} (1).ipynb").write_text("{}")
    found, why = repair.find_notebook(folder, lesson)
    assert found is None and "several notebooks" in why and "notes.ipynb" in why
    (folder / f"{lesson}.ipynb").write_text("{}")
    assert repair.find_notebook(folder, lesson) == (folder / f"{lesson}.ipynb", "")


def test_unreadable_files_say_why(tmp_path):
    path = tmp_path / "nb.ipynb"
    for data, why in ((b'{"cells": [', "not valid JSON"), (b"\xff\x00\x01", "not UTF-8"),
                      (b"[1, 2]", "not a Jupyter notebook")):
        path.write_bytes(data)
        with pytest.raises(repair.Unreadable, match=why):
            repair.read(path)


def test_lesson_files_never_take_the_folder_around_the_notebook(tmp_path):
    downloads = tmp_path / "Downloads"
    downloads.mkdir()
    (downloads / "holiday.mp4").write_bytes(b"x" * 1000)
    (downloads / "cifar10_model.pt").write_bytes(b"weights")
    assert repair.lesson_files("02_convolution", downloads) == []
    assert repair.lesson_files("08_cifar10_on_gpu", downloads) == [downloads / "cifar10_model.pt"]
    with pytest.raises(ValueError, match="more than the 0 MiB allowed: cifar10_model.pt"):
        repair.lesson_files("08_cifar10_on_gpu", downloads, max_bytes=3)
    stage = repair.staged("08_cifar10_on_gpu", downloads)
    try:
        assert sorted(p.name for p in stage.iterdir()) == ["cifar10_model.pt"]
    finally:
        shutil.rmtree(stage)


def test_collect_finds_a_renamed_notebook_and_says_which_one_is_broken(tmp_path):
    from autograder.collect import collect

    lesson = "02_convolution"
    messy.put(tmp_path, "colab", lesson, "colab_copy")
    (tmp_path / "broken" / lesson).mkdir(parents=True)
    (tmp_path / "broken" / lesson / f"{lesson} (1).ipynb").write_text('{"cells": [')
    (tmp_path / "absent").mkdir()
    subs = {s.student_id: s for s in collect(tmp_path, [lesson])}
    assert subs["colab"].status == "pending" and subs["colab"].notebook.name == f"Copy of {lesson}.ipynb"
    assert subs["broken"].status == "failed"
    assert subs["broken"].reason.startswith(f"in '{lesson} (1).ipynb': the notebook is not valid JSON")
    assert subs["absent"].status == "missing"


@pytest.mark.parametrize("name", ["Copy of 02_convolution.ipynb", "Copy_of_02_convolution.ipynb",
                                  "02_convolution (2).ipynb", "02_convolution-1.ipynb", "02_convolution - Copy.ipynb"])
def test_copy_marks_in_names_mean_the_lesson(name):
    assert repair.lesson_of(name, LESSONS) == "02_convolution"
    assert repair.lesson_of(name.replace("02_convolution", "02_convolutions"), LESSONS) is None


def test_a_deleted_setup_cell_is_restored_and_called_a_setup_cell():
    lesson = "02_convolution"
    nb = messy.student_notebook(lesson)
    nb.cells = [c for c in nb.cells if messy.gid(c) != "setup"]
    release = nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
    assert repair.repair(nb, release) == ["setup cells deleted or changed, restored: setup"]
    ids = [messy.gid(c) for c in nb.cells if messy.gid(c)]
    assert ids[:3] == ["colab_badge", "colab_setup", "setup"]


def test_a_question_answer_is_recognised_by_its_assignment():
    from autograder.repair import _defines

    assert _defines("# my prediction\nq_output_shape = (2, 4, 30, 30)\n", "q_output_shape")
    assert _defines("q_fraction: float = 0.5", "q_fraction")
    assert not _defines("print(q_output_shape)", "q_output_shape")
    assert _defines("def correlate2d(image, kernel):\n    return image", "correlate2d")


def test_the_released_demonstrations_are_marked_and_nothing_the_student_added():
    """The grading kernel leaves the release's demonstration cells out (no grade depends on them), even edited
    ones; a cell the student added may define a helper, so it runs; a mark the student wrote means nothing."""
    lesson = "02_convolution"
    release = nbformat.read(ROOT / "lessons" / lesson / f"{lesson}.ipynb", as_version=4)
    nb = messy.student_notebook(lesson)
    demos = [c for c in nb.cells if c.cell_type == "code" and not c.metadata.get("nbgrader")]
    demos[0].source += "\nprint('edited')"
    added = nbformat.v4.new_code_cell("def helper(x):\n    return x", metadata={"autograder": {"demonstration": True}})
    nb.cells.insert(nb.cells.index(demos[1]), added)
    repair.repair(nb, release)
    marked = [c for c in nb.cells if c.metadata.get("autograder", {}).get("demonstration")]
    assert [c.id for c in marked] == [c.id for c in demos]
    assert all(not c.metadata.get("nbgrader") for c in marked) and added not in marked
