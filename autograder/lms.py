"""Submissions from a learning-management system: a downloaded zip, through nbgrader's ``zip_collect``.

``python -m autograder collect-zip DOWNLOAD.zip --lesson 02_convolution --into SUBMISSIONS``
extracts the archive with nbgrader's ZipCollectApp in a scratch course directory and
copies the result into nbgrader's submitted layout, ready for ``grade``. Which file
goes to which student is decided here, for every file of the download, and handed to
nbgrader as its collector plugin (:class:`PlannedCollector`). Layouts understood
without a regular expression:

- Canvas: ``<name>_[LATE_]<user id>_<submission id>_<file>``, where ``<file>`` may carry
  Canvas's resubmission number (``02_convolution-1.ipynb``) or Colab's "Copy of ...";
- Moodle: ``<Full Name>_<participant id>_assignsubmission_file_/<file>`` (one folder per
  student) or the same without the slash (flat download);
- anything ``<student>_<anything>_<lesson>.ipynb``; ``--regexp`` takes nbgrader's
  ``named_regexp`` (groups ``student_id`` and ``file_id``) for other patterns.

When a student has several notebooks for the lesson, the latest is collected (a LATE
one over an on-time one, then the highest resubmission number, then the newest date in
the zip) and the others are listed. Every file of the download is either collected or
listed with the reason it was not, on screen and in ``SUBMISSIONS/<lesson>_intake.csv``,
which also keeps Canvas's LATE mark for the instructor.

Nothing in the download is trusted: an entry whose name would land outside the folder (``../``, an absolute
or Windows path, a NUL), a link or a device is listed and never extracted, and a name that would make a
student folder outside SUBMISSIONS (``..``) is not collected. nbgrader extracts a copy of the download that
holds only the files to collect, so no other name reaches its extractor, and nothing is written outside the
scratch folder but ``SUBMISSIONS/<student_id>/<lesson>/`` and the intake list.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import ntpath
import os
import pathlib
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import unicodedata
import zipfile

from nbgrader.plugins.zipcollect import FileNameCollectorPlugin
from traitlets import Unicode

from .repair import LESSON_OUTPUTS, lesson_of

CANVAS = re.compile(r"^(?:.*/)?(?P<name>[^_/]+)_(?:(?P<late>LATE)_)?(?P<uid>\d+)_\d+_(?P<file>[^/]+)$")
MOODLE = re.compile(r"^(?:.*/)?(?P<name>[^/]+?)_(?P<uid>\d+)_assignsubmission_[a-z]+_/?(?:.*/)?(?P<file>[^/]+)$")
SYSTEM_FILES = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$|Thumbs\.db$|desktop\.ini$)")


def default_regexp(lesson: str) -> str:
    return rf"^(?:.*/)?(?P<student_id>[A-Za-z0-9.@+-]+)_(?:.*_)?(?P<file_id>{re.escape(lesson)}\.ipynb)$"


@dataclasses.dataclass
class Entry:
    """One file of the download and what became of it."""
    path: str                      # inside the zip
    student_id: str = ""
    file_id: str = ""              # its name in SUBMISSIONS/<student_id>/<lesson>/ when collected
    late: bool = False
    collected: bool = False
    reason: str = ""               # why it was not collected, or what was done to it
    uid: str = ""
    version: int = 0
    date: tuple = ()


def _slug(name: str) -> str:
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    return re.sub(r"[^A-Za-z0-9.@+-]+", "-", ascii_name).strip("-").lower() or "student"


def _version(file: str) -> int:
    """Canvas's resubmission number ("-2"), or a browser's copy number (" (2)")."""
    match = re.search(r"(?:-(\d+)| \((\d+)\))\.[A-Za-z0-9]+$", file)
    return int(match.group(1) or match.group(2)) if match else 0


def parse(path: str, lesson: str, regexp: str | None = None) -> Entry | None:
    """Who handed in ``path`` and under which name, or None when the name says nothing about it.

    Of the layouts that fit, the first whose file name is the lesson's wins ("bob_99_02_convolution.ipynb"
    fits Canvas's layout with the file "convolution.ipynb", and the generic one with "02_convolution.ipynb").
    """
    if regexp:
        match = re.match(regexp, path)
        return None if not match else Entry(path, student_id=match.group("student_id"), uid=match.group("student_id"),
                                            file_id=match.group("file_id"), version=_version(match.group("file_id")))
    fits = []
    for layout in (MOODLE, CANVAS):
        match = layout.match(path)
        if match:
            fits.append(Entry(path, student_id=_slug(match.group("name")), file_id=match.group("file"),
                              uid=match.group("uid"), late=bool(match.groupdict().get("late")),
                              version=_version(match.group("file"))))
    match = re.match(default_regexp(lesson), path)
    if match:
        fits.append(Entry(path, student_id=match.group("student_id"), file_id=match.group("file_id"),
                          uid=match.group("student_id")))
    return next((e for e in fits if lesson_of(e.file_id, [lesson])), fits[0] if fits else None)


def plan(names: list[tuple[str, tuple]], lesson: str, regexp: str | None = None) -> list[Entry]:
    """Decide, for every file of the download (path, zip date), whether and where it is collected."""
    entries: list[Entry] = []
    outputs = LESSON_OUTPUTS.get(lesson, [])
    for path, date in names:
        entry = parse(path, lesson, regexp)
        if SYSTEM_FILES.search(path):
            entry = Entry(path, reason="a file the operating system adds to archives")
        elif path.lower().endswith((".zip", ".gz")):
            entry = Entry(path, reason="an archive inside the download: unpack it and collect its notebook")
        elif entry is None:
            entry = Entry(path, reason="the file name does not say which student it is from "
                                       "(not a Canvas or Moodle name; try --regexp)")
        elif not (_folder_name(entry.student_id) and _folder_name(entry.file_id)):
            entry = Entry(path, reason=f"the name makes {entry.student_id!r}/{entry.file_id!r}: not a plain folder and "
                                       "file name (it would climb out of SUBMISSIONS or be hidden; try --regexp); "
                                       "not collected")
        elif not entry.file_id.endswith(".ipynb") and lesson_of(entry.file_id, outputs) is None:
            entry.reason = "not a notebook" + (f" or {', '.join(outputs)}" if outputs else "")
        entry.date = tuple(date)
        entries.append(entry)
    _unique_ids(entries)
    for student in {e.student_id for e in entries if e.student_id and not e.reason}:
        mine = [e for e in entries if e.student_id == student and not e.reason]
        for name in outputs:
            _take_latest([e for e in mine if lesson_of(e.file_id, [name])], name, "an older copy of")
        notebooks = [e for e in mine if e.file_id.endswith(".ipynb")]
        named = [e for e in notebooks if lesson_of(e.file_id, [lesson])]
        chosen = _take_latest(named or notebooks, f"{lesson}.ipynb" if named else None, "an older copy than")
        for other in notebooks:
            if not other.collected and not other.reason:
                other.reason = f"not the lesson's notebook; collected {chosen.path} for this student"
    return entries


def _folder_name(name: str) -> bool:
    """A name that stays one level down, seen by grade: '..' would climb out of SUBMISSIONS, '.x' is hidden."""
    return bool(name) and not name.startswith(".") and not set(name) & set("/\\\0")


def unsafe(info: zipfile.ZipInfo) -> str:
    """Why the archive entry ``info`` is never extracted, '' when it can be: its name would land outside the
    folder, or it is a link (which would lead anywhere the grader can read) or a device."""
    name, mode = info.filename, info.external_attr >> 16
    if "\0" in info.orig_filename:  # zipfile cuts the name at the NUL: what another tool sees differs
        why = "unsafe name in the archive (a NUL character)"
    elif name.startswith(("/", "\\")) or ntpath.splitdrive(name)[0]:
        why = "unsafe name in the archive (an absolute path)"
    elif ".." in re.split(r"[/\\]", name):
        why = "unsafe name in the archive (climbs out of the folder)"
    elif "\\" in name:  # Windows reads it as a folder separator
        why = "unsafe name in the archive (a backslash)"
    elif stat.S_ISLNK(mode):
        why = "a link in the archive (links are never followed)"
    elif stat.S_IFMT(mode) not in (0, stat.S_IFREG):
        why = "a device, fifo or socket in the archive"
    else:
        return ""
    return f"{why}: {info.orig_filename.replace(chr(0), '<NUL>')}; not extracted"


def _take_latest(candidates: list[Entry], file_id: str | None, older: str) -> Entry | None:
    if not candidates:
        return None
    latest = max(candidates, key=lambda e: (e.late, e.version, e.date, e.path))
    latest.collected, latest.file_id = True, file_id or latest.file_id
    if latest.file_id != pathlib.PurePosixPath(latest.path).name:
        latest.reason = f"collected as {latest.file_id}"
    for other in candidates:
        if other is not latest:
            other.reason = f"{older} {latest.path}, which was collected"
    return latest


def _unique_ids(entries: list[Entry]) -> None:
    """Two students with the same name stay two students: their LMS ids are added."""
    uids: dict[str, set[str]] = {}
    for e in entries:
        if e.student_id:
            uids.setdefault(e.student_id, set()).add(e.uid)
    for e in entries:
        if e.student_id and len(uids[e.student_id]) > 1:
            e.student_id = f"{e.student_id}_{e.uid}"


class PlannedCollector(FileNameCollectorPlugin):
    """nbgrader's collector plugin, answering from the plan :func:`collect_zip` made for every file."""

    plan_file = Unicode("", help="JSON: extracted file path -> {student_id, file_id}").tag(config=True)

    def collect(self, submitted_file: str) -> dict | None:
        with open(self.plan_file) as f:
            return json.load(f).get(os.path.realpath(submitted_file))


def collect_zip(archive: pathlib.Path, lesson: str, into: pathlib.Path, regexp: str | None = None) -> list[Entry]:
    """Extract ``archive`` into ``into/<student_id>/<lesson>/``; return every file of it and what became of it."""
    from .config import ensure_tools_on_path

    ensure_tools_on_path()
    with zipfile.ZipFile(archive) as z:
        infos = [i for i in z.infolist() if not i.is_dir()]
    refused = [Entry(i.filename, reason=unsafe(i)) for i in infos if unsafe(i)]
    infos = [i for i in infos if not unsafe(i)]
    planned = plan([(i.filename, i.date_time) for i in infos], lesson, regexp)
    entries = planned + refused
    with tempfile.TemporaryDirectory(prefix="cnn-zip-") as scratch:
        course = pathlib.Path(scratch).resolve()
        target = course / "downloaded" / lesson / "archive"
        target.mkdir(parents=True)
        write_collected(archive, list(zip(infos, planned)), target / "download.zip")
        extracted = course / "downloaded" / lesson / "extracted" / "download"
        (course / "plan.json").write_text(json.dumps(
            {os.path.realpath(extracted / e.path): {"student_id": e.student_id, "file_id": e.file_id}
             for e in entries if e.collected}))
        (course / "nbgrader_config.py").write_text(
            "from autograder.lms import PlannedCollector\n"
            "c = get_config()\n"
            f"c.CourseDirectory.root = {str(course)!r}\n"
            "c.CourseDirectory.course_id = 'cnn-course'\n"
            "c.ZipCollectApp.collector_plugin = PlannedCollector\n"
            f"c.PlannedCollector.plan_file = {str(course / 'plan.json')!r}\n")
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(pathlib.Path(__file__).resolve().parent.parent), *filter(None, [os.environ.get("PYTHONPATH")])])}
        result = subprocess.run([sys.executable, "-m", "nbgrader", "zip_collect", lesson, "--force"], cwd=course,
                                capture_output=True, text=True, env=env)
        if result.returncode != 0:
            raise RuntimeError(f"nbgrader zip_collect failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
        submitted = course / "submitted"
        for student in sorted({e.student_id for e in entries if e.collected}):
            dest = into / student / lesson
            if dest.exists():
                shutil.rmtree(dest)
            shutil.copytree(submitted / student / lesson, dest)
    for e in entries:
        if e.collected and not (into / e.student_id / lesson / e.file_id).is_file():
            e.collected, e.reason = False, "nbgrader's zip_collect did not collect it (see its log)"
    write_intake(entries, into / f"{lesson}_intake.csv")
    return entries


def write_collected(archive: pathlib.Path, planned: list[tuple[zipfile.ZipInfo, Entry]], copy: pathlib.Path) -> None:
    """Write ``copy``: a zip of the entries of ``archive`` the plan collects, for nbgrader to extract.

    No other name of the download reaches nbgrader's extractor, and each file is a plain one the grader can read,
    whatever mode the download gave it. An entry that cannot be read (damaged, encrypted) costs that file only.
    """
    with zipfile.ZipFile(archive) as z, zipfile.ZipFile(copy, "w", zipfile.ZIP_DEFLATED) as out:
        for info, entry in planned:
            if not entry.collected:
                continue
            try:
                data = z.read(info)
            except Exception as exc:  # BadZipFile, RuntimeError (encrypted), NotImplementedError, zlib.error, ...
                entry.collected, entry.reason = False, f"could not be read from the archive ({exc}); not extracted"
                continue
            plain = zipfile.ZipInfo(info.filename, info.date_time)
            plain.external_attr = (stat.S_IFREG | 0o644) << 16
            out.writestr(plain, data, zipfile.ZIP_DEFLATED)


def write_intake(entries: list[Entry], path: pathlib.Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["file", "student_id", "collected", "late", "note"])
        for e in entries:
            out.writerow([e.path, e.student_id, "yes" if e.collected else "no", "LATE" if e.late else "", e.reason])


def summary(entries: list[Entry], into: pathlib.Path, lesson: str) -> str:
    """What collect-zip prints: the count, every file not collected and why, the LATE ones."""
    students = sorted({e.student_id for e in entries if e.collected and e.file_id.endswith(".ipynb")})
    lines = [f"collected {len(students)} submissions ({sum(e.collected for e in entries)} of {len(entries)} files) "
             f"into {into}; every file is listed in {into / f'{lesson}_intake.csv'}"]
    lines += [f"  not collected: {e.path}: {e.reason}" for e in entries if not e.collected]
    lines += [f"  LATE: {e.student_id} ({e.path})" for e in entries if e.collected and e.late]
    return "\n".join(lines)
