"""The course at a glance: lessons in order, with objectives, time and prerequisites.

One catalogue feeds the start notebook (``00_start_here``), the README's lessons table
(``tools/lessons_table.py``) and the lesson headers (which lesson asks for a GPU), so
they cannot disagree. :func:`progress` is the start notebook's "check your work" cell:
it reads the learner's saved lesson notebooks and says which exercises are still open.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pathlib

from . import links

QUESTION_PREFIX = "q_"
"""Grade ids of "predict, then check" answers (a value in a solution cell) start with this."""


def is_question(grade_id: str) -> bool:
    return grade_id.startswith(QUESTION_PREFIX)


@dataclasses.dataclass(frozen=True)
class Lesson:
    id: str
    title: str
    minutes: int
    prerequisites: tuple[str, ...]
    objectives: tuple[str, ...]
    functions: tuple[str, ...] = ()
    gpu: bool = False

    @property
    def number(self) -> str:
        return self.id[:2]


START = Lesson(
    "00_start_here", "Start here", 10, (),
    ("find your way through the course", "check that your setup works", "see which exercises you have finished"),
)

LESSONS: tuple[Lesson, ...] = (
    Lesson("01_fully_connected_limits", "The limits of fully-connected layers", 60,
           ("NumPy arrays and indexing", "what a dense layer computes"),
           ("count the parameters of dense and convolutional layers",
            "write a convolution as a (mostly zero) matrix",
            "see that a dense layer does not respect translations"),
           functions=("dense_param_count", "conv_param_count", "conv_as_matrix", "translate")),
    Lesson("02_convolution", "Convolution", 75, ("01",),
           ("compute a 2-D cross-correlation by hand and in NumPy",
            "tell correlation from true convolution",
            "write a convolutional layer with channels, batches and bias",
            "show that two convolutions with nothing between them are one, and a ReLU breaks that"),
           functions=("correlate2d", "convolve2d", "conv2d_forward", "compose_kernels")),
    Lesson("03_padding_and_stride", "Padding, stride and dilation", 90, ("02",),
           ("predict output sizes from padding, stride and dilation",
            "match PyTorch's conv2d, then make it fast with im2col",
            "derive and check the backward pass of a convolution"),
           functions=("conv_output_size", "same_padding", "pad2d", "conv2d", "conv2d_fast", "conv2d_backward")),
    Lesson("04_pooling", "Pooling and 1x1 convolutions", 70, ("03",),
           ("write max, average and global average pooling",
            "see a 1x1 convolution as a per-pixel linear layer, and why ResNet's bottleneck block is cheap",
            "route gradients through max pooling"),
           functions=("max_pool2d", "avg_pool2d", "global_avg_pool2d", "conv1x1", "max_pool2d_backward")),
    Lesson("05_normalization", "Normalisation layers", 85, ("02", "03", "04", "NumPy broadcasting"),
           ("write batch norm for training and evaluation, with running statistics",
            "relate group, layer and instance norm",
            "derive the batch-norm backward pass"),
           functions=("batchnorm2d", "group_norm", "batchnorm2d_backward")),
    Lesson("06_receptive_fields", "Receptive fields", 70, ("03", "04"),
           ("compute receptive field sizes and jumps layer by layer",
            "find the input window of an output pixel",
            "confirm it with autograd"),
           functions=("receptive_fields", "input_window", "gradient_window")),
    Lesson("07_building_a_cnn", "Building a CNN", 90, ("02", "03", "04", "basic PyTorch"),
           ("build a small CNN with torch.nn",
            "count its parameters and multiply-accumulates, trace its shapes",
            "overfit one batch: the first sanity check of any training run",
            "see where the ReLUs go and measure what the network becomes without them"),
           functions=("build_seed_cnn", "count_parameters", "layer_shapes", "count_macs", "overfit_batch")),
    Lesson("08_cifar10_on_gpu", "CIFAR-10 on a GPU", 120, ("07",),
           ("write data augmentation that runs on the GPU",
            "hold out a validation split and make every choice on it, touching the test set once",
            "see why deep networks need residual connections, measured",
            "write inverted dropout and measure what regularisation buys",
            "train and evaluate a network with batch norm to 90%+ test accuracy",
            "read learning curves and time a training run"),
           functions=("random_flip_translate", "train_val_split", "build_model", "train_one_epoch", "evaluate",
                      "dropout"), gpu=True),
    Lesson("09_inside_the_cnn", "Inside the CNN", 90, ("08",),
           ("look at feature maps with forward hooks",
            "compute saliency maps and Grad-CAM",
            "read a network's errors: confusion matrix, confident mistakes, occlusion maps",
            "judge what a network attends to"),
           functions=("feature_maps", "saliency_map", "grad_cam", "confusion_matrix", "occlusion_map")),
)

ALL: tuple[Lesson, ...] = (START, *LESSONS)
BY_ID = {lesson.id: lesson for lesson in ALL}


def gpu_lessons() -> set[str]:
    return {lesson.id for lesson in ALL if lesson.gpu}


def _prerequisites(lesson: Lesson) -> str:
    named = [f"lesson {p}" if p.isdigit() else p for p in lesson.prerequisites]
    return ", ".join(named) if named else "none"


def path_markdown() -> str:
    """The course path as a Markdown table with links that work in JupyterLab and on GitHub."""
    rows = ["| # | lesson | you will | time | before it |", "|---|---|---|---|---|"]
    for lesson in LESSONS:
        link = f"[{lesson.title}](../{lesson.id}/{lesson.id}.ipynb)"
        gpu = " (GPU)" if lesson.gpu else ""
        rows.append(f"| {lesson.number} | {link}{gpu} | {'; '.join(lesson.objectives)} | "
                    f"{lesson.minutes} min | {_prerequisites(lesson)} |")
    total = sum(lesson.minutes for lesson in LESSONS)
    rows.append(f"\nAll nine lessons: about {total // 60} h {total % 60:02d} min of focused work.")
    return "\n".join(rows)


def readme_markdown() -> str:
    """The README's lessons table: every lesson with its Colab and Binder badges."""
    rows = ["| # | lesson | you implement | time | open |", "|---|---|---|---|---|"]
    for lesson in ALL:
        link = f"[{lesson.title}]({links.lesson_path(lesson.id)})"
        gpu = " (GPU)" if lesson.gpu else ""
        functions = ", ".join(f"`{f}`" for f in lesson.functions) or "nothing: the path, a setup check, your progress"
        rows.append(f"| {lesson.number} | {link}{gpu} | {functions} | {lesson.minutes} min | "
                    f"{links.colab_badge(lesson.id)} {links.binder_badge(lesson.id)} |")
    return "\n".join(rows)


# ---------------------------------------------------------------- check your work

STUB = "raise NotImplementedError()"


@dataclasses.dataclass
class LessonProgress:
    lesson: str
    found: bool
    exercises: list[str] = dataclasses.field(default_factory=list)
    open: list[str] = dataclasses.field(default_factory=list)
    questions: list[str] = dataclasses.field(default_factory=list)
    unanswered: list[str] = dataclasses.field(default_factory=list)
    ran_tests: int = 0
    failed_tests: list[str] = dataclasses.field(default_factory=list)

    def summary(self) -> str:
        if not self.found:
            return "not opened yet (no saved notebook found)"
        if not self.exercises:
            return "nothing to grade here"
        done = len(self.exercises) - len(self.open)
        text = f"{done}/{len(self.exercises)} exercises written"
        if self.open:
            text += f"; still open: {', '.join(self.open)}"
        if self.questions:
            text += f"; {len(self.questions) - len(self.unanswered)}/{len(self.questions)} questions answered"
        if self.failed_tests:
            text += f"; visible tests failing when last run: {', '.join(self.failed_tests)}"
        elif self.ran_tests:
            text += f"; {self.ran_tests} test cells passed when last run"
        return text


def lesson_progress(notebook: pathlib.Path, lesson: str) -> LessonProgress:
    """What a saved lesson notebook says about the learner's work (read from the file, nothing is run)."""
    if not notebook.is_file():
        return LessonProgress(lesson, found=False)
    try:
        cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    except (OSError, ValueError, KeyError):
        return LessonProgress(lesson, found=False)
    result = LessonProgress(lesson, found=True)
    for cell in cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        source = "".join(cell.get("source", ""))
        if meta.get("solution") and cell.get("cell_type") == "code":
            gid = meta.get("grade_id", "?")
            (result.questions if is_question(gid) else result.exercises).append(gid)
            if STUB in source or (is_question(gid) and f"{gid} = ...  # your prediction" in source):
                (result.unanswered if is_question(gid) else result.open).append(gid)
        elif meta.get("grade") and cell.get("outputs") is not None and cell.get("execution_count"):
            result.ran_tests += 1
            if any(o.get("output_type") == "error" for o in cell["outputs"]):
                result.failed_tests.append(meta.get("grade_id", "?"))
    return result


def progress(lessons_dir: str | os.PathLike = "..") -> list[LessonProgress]:
    """Progress through every lesson, from the notebooks saved under ``lessons_dir/<id>/<id>.ipynb``."""
    root = pathlib.Path(lessons_dir)
    return [lesson_progress(root / lesson.id / f"{lesson.id}.ipynb", lesson.id) for lesson in LESSONS]

