"""collect-zip on downloads laid out as Canvas and Moodle make them: no student lost, every file accounted for."""

import csv
import pathlib
import subprocess
import sys
import zipfile

from autograder import lms
from tests import messy

ROOT = pathlib.Path(__file__).resolve().parent.parent
LESSON = "02_convolution"


def notebook(tag: str) -> bytes:
    nb = messy.student_notebook(LESSON)
    nb.metadata["handed_in_as"] = tag  # tells the copies apart
    return messy.text(nb).encode()


# path in the zip -> (student id it belongs to or None, collected?)
CLASS = {
    "smithjohn_12345_678901_02_convolution.ipynb": ("smithjohn", True),
    "smithjohn_12345_678901_notes.pdf": ("smithjohn", False),
    "doejane_22222_678800_02_convolution.ipynb": ("doejane", False),  # the older of two
    "doejane_LATE_22222_678902_02_convolution-1.ipynb": ("doejane", True),  # Canvas resubmission, late
    "leeann_33333_678903_Copy of 02_convolution.ipynb": ("leeann", True),  # uploaded from Colab
    "Maria José García_555_assignsubmission_file_/02_convolution.ipynb": ("maria-jose-garcia", True),
    "Maria José García_555_assignsubmission_onlinetext_/onlinetext.html": ("maria-jose-garcia", False),
    "Wei Chen_556_assignsubmission_file_02_convolution (1).ipynb": ("wei-chen", True),  # Moodle, flat
    "__MACOSX/._smithjohn_12345_678901_02_convolution.ipynb": (None, False),
    "readme.txt": (None, False),
}


def download(tmp_path, files=CLASS) -> pathlib.Path:
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in files:
            z.writestr(name, notebook(name) if name.endswith(".ipynb") else b"other")
    return archive


def test_canvas_and_moodle_layouts_lose_no_student_and_list_every_file(tmp_path):
    subs = tmp_path / "submitted"
    result = subprocess.run([sys.executable, "-m", "autograder", "collect-zip", str(download(tmp_path)),
                             "--lesson", LESSON, "--into", str(subs)], cwd=ROOT, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    collected = {path: student for path, (student, taken) in CLASS.items() if taken}
    assert sorted(p.name for p in subs.iterdir() if p.is_dir()) == sorted(collected.values())
    assert result.stdout.startswith(f"collected {len(collected)} submissions")
    for path, student in collected.items():
        assert (subs / student / LESSON / f"{LESSON}.ipynb").read_bytes() == notebook(path), path
    with (subs / f"{LESSON}_intake.csv").open() as f:
        rows = {row["file"]: row for row in csv.DictReader(f)}
    assert sorted(rows) == sorted(CLASS)
    for path, (_, taken) in CLASS.items():
        assert rows[path]["collected"] == ("yes" if taken else "no"), path
        if not taken:
            assert rows[path]["note"] and f"not collected: {path}: {rows[path]['note']}" in result.stdout
    older = rows["doejane_22222_678800_02_convolution.ipynb"]["note"]
    assert older == "an older copy than doejane_LATE_22222_678902_02_convolution-1.ipynb, which was collected"
    assert rows["doejane_LATE_22222_678902_02_convolution-1.ipynb"]["late"] == "LATE"
    assert "LATE: doejane" in result.stdout


def test_two_students_with_one_name_stay_two(tmp_path):
    entries = lms.plan([("smithjohn_1_10_02_convolution.ipynb", ()), ("smithjohn_2_11_02_convolution.ipynb", ())],
                       LESSON)
    assert sorted(e.student_id for e in entries if e.collected) == ["smithjohn_1", "smithjohn_2"]


def test_a_lone_notebook_under_another_name_is_collected_as_it_is(tmp_path):
    (entry,) = lms.plan([("leeann_33333_678903_homework.ipynb", ())], LESSON)
    assert entry.collected and entry.file_id == "homework.ipynb"  # grade then says "graded 'homework.ipynb'"


def test_the_latest_by_date_when_names_do_not_tell(tmp_path):
    entries = lms.plan([("Wei Chen_556_assignsubmission_file_/02_convolution.ipynb", (2026, 3, 2, 0, 0, 0)),
                        ("Wei Chen_556_assignsubmission_file_/sub/02_convolution.ipynb", (2026, 3, 1, 0, 0, 0))],
                       LESSON)
    assert [e.collected for e in entries] == [True, False]


def test_unsafe_entries_are_listed_and_not_extracted_and_everyone_else_is_collected(tmp_path):
    import stat

    work = tmp_path / "work"
    work.mkdir()
    honest = {"smithjohn_12345_678901_02_convolution.ipynb": "smithjohn",
              "Wei Chen_556_assignsubmission_file_/02_convolution.ipynb": "wei-chen"}
    unsafe = {  # name in the zip -> words its note must contain
        "../../x.ipynb": "climbs out of the folder",
        "../../mallory_1_2_02_convolution.ipynb": "climbs out of the folder",
        f"{tmp_path}/abs_1_2_02_convolution.ipynb": "an absolute path",
        "C:\\abs_1_2_02_convolution.ipynb": "an absolute path",
        "\\\\server\\share\\abs_1_2_02_convolution.ipynb": "an absolute path",
        "sub\\..\\..\\bs_1_2_02_convolution.ipynb": "climbs out of the folder",
        "linker_1_2_02_convolution.ipynb": "a link",
        "fifo_1_2_02_convolution.ipynb": "a device, fifo or socket",
        ".._12345_678_02_convolution.ipynb": "not a plain folder and file name",  # Canvas's layout, the name "..": into/../
    }
    modes = {"linker_1_2_02_convolution.ipynb": stat.S_IFLNK | 0o777, "fifo_1_2_02_convolution.ipynb": stat.S_IFIFO | 0o644}
    archive = tmp_path / "download.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for name in honest:
            z.writestr(name, notebook(name))
        for name in unsafe:
            info = zipfile.ZipInfo(name)
            info.external_attr = modes.get(name, stat.S_IFREG | 0o644) << 16
            z.writestr(info, str(ROOT / "solutions" / LESSON / f"{LESSON}.ipynb") if name in modes else notebook(name))
    subs = work / "submitted"
    result = subprocess.run([sys.executable, "-m", "autograder", "collect-zip", str(archive), "--lesson", LESSON,
                             "--into", str(subs)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(p.name for p in subs.iterdir() if p.is_dir()) == sorted(honest.values())
    for name, student in honest.items():
        assert (subs / student / LESSON / f"{LESSON}.ipynb").read_bytes() == notebook(name), name
    with (subs / f"{LESSON}_intake.csv").open() as f:
        rows = {row["file"]: row for row in csv.DictReader(f)}
    assert sorted(rows) == sorted([*honest, *unsafe])
    for name, words in unsafe.items():
        assert rows[name]["collected"] == "no" and words in rows[name]["note"], (name, rows[name])
        assert "not extracted" in rows[name]["note"] or "not collected" in rows[name]["note"], rows[name]
        assert f"not collected: {name}: " in result.stdout
    # Nothing was written beside the download or the target folder.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["download.zip", "work"]
    assert [p.name for p in work.iterdir()] == ["submitted"]
