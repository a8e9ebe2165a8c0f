"""The course's nbgrader configuration, in one place.

``nbgrader_config.py`` at the repository root loads it for nbgrader's own command
line and formgrader; the autograder passes it to ``NbGraderAPI`` directly (which
does not read ``nbgrader_config.py``).
"""

from __future__ import annotations

import os
import pathlib
import re
import sys

from traitlets.config import Config

COURSE_ID = "cnn-course"
LESSON_PATTERN = re.compile(r"^\d\d_[a-z0-9_]+$")

CODE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"  # what replaces each solution in the student version
# Per-cell wall-clock limit while grading. Generous for CPU-only grading of the
# training lessons; an infinite loop costs this much once per cell it hangs in.
CELL_TIMEOUT_S = int(os.environ.get("CNN_GRADER_CELL_TIMEOUT_S", 120))
# Wall-clock budget of one submission: its notebook in the kernel (all its cells, restarts included), then its
# verification outside the kernel, which gets what is left. A grading worker still busy with it
# autograder.grade.OVERRUN_GRACE_S later is killed from the parent process.
SUBMISSION_TIMEOUT_S = int(os.environ.get("CNN_GRADER_SUBMISSION_TIMEOUT_S", 900))
# Limits of every process that runs student code (autograder/zygote.py): memory in MiB
# (RLIMIT_DATA: heap and anonymous mappings), CPU seconds per process, largest file written
# in MiB, processes, and the size of its private tmpfs (working folder, /tmp and /dev/shm
# together, in MiB; it lives in memory).
KERNEL_LIMITS = {
    "memory_mib": int(os.environ.get("CNN_GRADER_MEMORY_MIB", 4096)),
    "cpu_s": int(os.environ.get("CNN_GRADER_CPU_S", 1800)),
    "file_mib": int(os.environ.get("CNN_GRADER_FILE_MIB", 256)),
    "nproc": int(os.environ.get("CNN_GRADER_NPROC", 256)),
    "disk_mib": int(os.environ.get("CNN_GRADER_DISK_MIB", 1024)),
}
# Preload in each worker's zygote what the lessons import (autograder/zygote.py), instead of
# starting ipykernel, NumPy and PyTorch from nothing for every kernel. 0: preload nothing.
PRELOAD = os.environ.get("CNN_GRADER_PRELOAD", "1") != "0"


def course_root() -> pathlib.Path:
    """The repository: where ``solutions/`` lives (override with CNN_COURSE_ROOT)."""
    if os.environ.get("CNN_COURSE_ROOT"):
        return pathlib.Path(os.environ["CNN_COURSE_ROOT"]).resolve()
    here = pathlib.Path(__file__).resolve().parent.parent
    if (here / "solutions").is_dir():
        return here
    return pathlib.Path.cwd()


def lesson_ids(root: pathlib.Path | None = None) -> list[str]:
    """Lesson ids, in course order: every ``solutions/<id>/<id>.ipynb``."""
    solutions = (root or course_root()) / "solutions"
    return sorted(p.name for p in solutions.iterdir()
                  if LESSON_PATTERN.match(p.name) and (p / f"{p.name}.ipynb").is_file())


def ensure_tools_on_path() -> None:
    """nbgrader runs ``alembic`` by name; make it findable when our venv is not activated."""
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "").split(os.pathsep)
    if bindir not in path:
        os.environ["PATH"] = os.pathsep.join([bindir, *path])


def hidden_paths(*more: str | pathlib.Path) -> list[str]:
    """What student code must not see: the course (solutions, tests, git history), the grader's home,
    anything listed in CNN_GRADER_HIDE (os.pathsep-separated) and ``more`` (the grader adds its
    workspace, the submissions and the output folder). The sandbox shows only what it binds
    (autograder/isolation.py); these are hidden even where they lie inside a folder it binds."""
    paths = [str(course_root()), os.path.expanduser("~"), *(str(pathlib.Path(p).resolve()) for p in more)]
    paths += [p for p in os.environ.get("CNN_GRADER_HIDE", "").split(os.pathsep) if p]
    return list(dict.fromkeys(paths))


def course_config(root: pathlib.Path, *, source: str = "solutions", release: str = "lessons",
                  db_url: str | None = None) -> Config:
    """nbgrader settings for a course directory ``root``."""
    c = Config()
    c.CourseDirectory.root = str(root)
    c.CourseDirectory.course_id = COURSE_ID
    c.CourseDirectory.source_directory = source
    c.CourseDirectory.release_directory = release
    c.CourseDirectory.db_url = db_url or f"sqlite:///{pathlib.Path(root) / 'gradebook.db'}"
    c.CourseDirectory.ignore = [".ipynb_checkpoints", "*.pyc", "__pycache__", "feedback", ".DS_Store"]
    c.ClearSolutions.code_stub = {"python": CODE_STUB}
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import ClearSolutions

    from .release import StudentVersion  # question stubs and figure links, before nbgrader's checksums

    steps = list(GenerateAssignment.class_traits()["preprocessors"].default())
    c.GenerateAssignment.preprocessors = [*steps[:steps.index(ClearSolutions) + 1], StudentVersion,
                                          *steps[steps.index(ClearSolutions) + 1:]]
    c.Execute.timeout = CELL_TIMEOUT_S
    # Our Execute: sandboxed kernel, a kernel death or timeout costs one exercise (autograder/execute.py).
    from nbconvert.preprocessors import ClearMetadataPreprocessor
    from nbgrader.preprocessors import AssignLatePenalties, CheckCellMetadata, IgnorePattern, LimitOutput, SaveAutoGrades

    from .execute import ResilientExecute

    c.Autograde.autograde_preprocessors = [ResilientExecute, IgnorePattern, ClearMetadataPreprocessor, LimitOutput,
                                           SaveAutoGrades, AssignLatePenalties, CheckCellMetadata]
    c.ResilientExecute.submission_timeout = SUBMISSION_TIMEOUT_S
    c.ResilientExecute.hide = hidden_paths(root)
    c.Execute.interrupt_on_timeout = True
    c.Execute.extra_arguments = ["--HistoryManager.hist_file=:memory:", "--IPKernelApp.log_level=ERROR"]
    # As shipped, any stderr output in a test cell scores 0, so a correct answer that
    # triggers a library warning would lose its points. Errors are separate outputs
    # (output_type "error") and still fail the cell.
    c.IgnorePattern.enabled = True
    c.IgnorePattern.pattern = r"[\s\S]"
    c.GenerateFeedback.exporter_class = "autograder.feedback.FeedbackExporter"  # the same page, half the time
    c.GenerateFeedback.preprocessors = [
        "nbgrader.preprocessors.GetGrades",
        "autograder.feedback.HideHiddenTests",
        "nbconvert.preprocessors.CSSHTMLHeaderPreprocessor",
    ]
    return c
