"""Lessons that chain: lesson 09 looks inside the network the learner trained in lesson 08.

On one machine (a clone, Binder, a JupyterHub) the lessons share a folder tree, and lesson 09
finds ``cifar10_model.pt`` beside its notebook or in ``../08_cifar10_on_gpu/``. On Colab every
notebook gets a fresh runtime, so the file has to travel: lesson 08 offers to copy it to Google
Drive (:func:`save_to_drive`), and lesson 09 looks there when the learner lets it mount Drive,
or takes the file as an upload (:func:`checkpoint_upload_widget`). Only when all of that finds
nothing does lesson 09 fall back to a small stand-in network, and it says so.

Places, in the order :func:`find_checkpoint` tries them:

1. ``$CNN_COURSE_CHECKPOINT`` (a path), when set;
2. ``cifar10_model.pt`` beside the notebook (where an upload lands, and where Colab's Files
   panel puts a file dropped into ``/content``);
3. ``../08_cifar10_on_gpu/cifar10_model.pt`` (the repository's layout);
4. on Colab only: ``/content/drive/MyDrive/cnn-course/cifar10_model.pt``, where lesson 08 copies
   it; Drive is mounted only when the learner asks (``mount_drive=True``); an already mounted
   Drive is searched without asking.
"""

from __future__ import annotations

import contextlib
import io
import os
import pathlib
import shutil
import sys
from collections.abc import Callable
from typing import NamedTuple

from . import cifar

CHECKPOINT = cifar.CHECKPOINT
ENV_CHECKPOINT = cifar.ENV_CHECKPOINT
LESSON_08 = "08_cifar10_on_gpu"
DRIVE_MOUNT = "/content/drive"   # where Colab mounts Google Drive
DRIVE_SUBFOLDER = "cnn-course"   # lesson 08 copies the checkpoint to MyDrive/cnn-course/

BESIDE = "beside this notebook"
SIBLING = "lesson 08's folder"
DRIVE = "your Google Drive"
ENVIRONMENT = f"${ENV_CHECKPOINT}"


class CheckpointError(ValueError):
    """A file that is not a state dict for lesson 08's network; the message says what is wrong."""


# --------------------------------------------------------------------------- where we are

def on_colab() -> bool:
    """True inside a Google Colab runtime (its kernel imports ``google.colab`` at start-up)."""
    return "google.colab" in sys.modules


def drive_checkpoint() -> pathlib.Path:
    """Where lesson 08 copies the checkpoint in Google Drive (and lesson 09 looks for it)."""
    return pathlib.Path(DRIVE_MOUNT) / "MyDrive" / DRIVE_SUBFOLDER / CHECKPOINT


def drive_mounted() -> bool:
    return (pathlib.Path(DRIVE_MOUNT) / "MyDrive").is_dir()


def _mount_drive() -> None:
    """Mount Google Drive at DRIVE_MOUNT (Colab shows its own permission dialog)."""
    from google.colab import drive  # only ever called on Colab

    drive.mount(DRIVE_MOUNT)


def mount_google_drive() -> bool:
    """Mount Drive unless it is mounted already; False (and no error) when not on Colab."""
    if not on_colab():
        return False
    if not drive_mounted():
        _mount_drive()
    return drive_mounted()


# --------------------------------------------------------------------------- checking a file

def _short(names, k: int = 3) -> str:
    names = list(names)
    more = f" and {len(names) - k} more" if len(names) > k else ""
    return ", ".join(names[:k]) + more


def _is_bytes(source) -> bool:
    return isinstance(source, (bytes, bytearray, memoryview))


def _label(source, name: str | None) -> str:
    return name or ("the file" if _is_bytes(source) else str(source))


def load_state_dict(source, name: str | None = None) -> dict:
    """Read a state dict from a path or from bytes, safely (``weights_only``); CheckpointError otherwise."""
    import torch

    name = _label(source, name)
    stream = io.BytesIO(bytes(source)) if _is_bytes(source) else source
    try:
        state = torch.load(stream, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - anything that is not a plain tensor file
        if "Unsupported global" in str(exc):  # pickled classes: refused, as they could run code
            raise CheckpointError(f"{name} holds more than tensors (a whole pickled model?): lesson 08 saves "
                                  f"model.state_dict() with cifar.save_checkpoint; use that file") from exc
        raise CheckpointError(f"{name} is not a PyTorch checkpoint (torch.load cannot read it); "
                              f"use the {CHECKPOINT} that lesson 08 saved") from exc
    if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{name} holds a {type(state).__name__}, not a state dict (a dict of parameter "
                              "names to tensors, as model.state_dict() gives)")
    return state


def load_checkpoint(source, build_model: Callable | None = None, name: str | None = None):
    """``build_model()`` (default: lesson 08's reference network) with the weights from ``source``
    (a path or bytes), in eval mode on the CPU. CheckpointError, with a plain reason, when the file
    is not a state dict for that network."""
    network = "lesson 08's network" + ("" if build_model else " (the reference ResNet-9 at width 64: stages prep, "
                                         "layer1, res1, layer2, layer3, res3, fc)")
    build_model = build_model or cifar.reference_model
    state = load_state_dict(source, name)
    name = _label(source, name)
    model = build_model()
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})" for k, v in expected.items()
              if k in state and hasattr(state[k], "shape") and tuple(state[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {_short(missing)})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {_short(unexpected)})")
        if shapes:
            parts.append(f"{len(shapes)} of another shape (e.g. {_short(shapes, 2)})")
        raise CheckpointError(f"{name} is not a state dict for {network}: parameters {'; '.join(parts)}")
    try:
        model.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - e.g. a tensor that is not a tensor
        raise CheckpointError(f"{name} does not load into {network} ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0][:160]})") from exc
    return model.eval()


def checkpoint_problem(source, build_model: Callable | None = None, name: str | None = None) -> str | None:
    """None when ``source`` loads into ``build_model()``, else the reason it does not."""
    try:
        load_checkpoint(source, build_model, name)
    except CheckpointError as exc:
        return str(exc)
    return None


# --------------------------------------------------------------------------- finding lesson 08's file

class Found(NamedTuple):
    """What :func:`find_checkpoint` found: ``path`` (None when nothing), ``where`` (in words),
    ``looked`` (every place it looked, in order) and ``problems`` (files found but not usable)."""

    path: pathlib.Path | None
    where: str
    looked: tuple[str, ...]
    problems: tuple[str, ...] = ()

    @property
    def message(self) -> str:
        if self.path is not None:
            return f"found your lesson 08 model {self.where}: {self.path}"
        found = ("; ".join(self.problems) + ". ") if self.problems else ""
        return (f"{found}no {'usable' if self.problems else 'trained'} lesson 08 model found (looked in: "
                f"{'; '.join(self.looked)}). " + how_to_bring_it())


def how_to_bring_it(button: str = "below") -> str:
    """What the learner can do to use their own model instead of the stand-in."""
    if on_colab():
        drive = ("" if drive_mounted() else
                 "if lesson 08 saved it to Google Drive, set USE_DRIVE = True and run the cell again; ")
        return (f"To use yours: {drive}drop {CHECKPOINT} into the Files panel on the left (into /content, any "
                f"size), or upload a small one with the button {button}; then run the model cell again.")
    return (f"To use yours: copy lesson 08's {CHECKPOINT} beside this notebook (dragging it into JupyterLab's "
            f"file browser works for any size), or upload it with the button {button}; then run the model cell "
            "again.")


def candidates(mount_drive: bool = False) -> list[tuple[pathlib.Path, str]]:
    """(path, where) for every place lesson 09 looks, in order (see the module's docstring)."""
    places = []
    if os.environ.get(ENV_CHECKPOINT):
        places.append((pathlib.Path(os.environ[ENV_CHECKPOINT]).expanduser(), f"where {ENVIRONMENT} points"))
    places.append((pathlib.Path(CHECKPOINT), BESIDE))
    places.append((pathlib.Path("..") / LESSON_08 / CHECKPOINT, f"in {SIBLING}"))
    if on_colab():
        if mount_drive:
            mount_google_drive()
        if drive_mounted():
            places.append((drive_checkpoint(), f"in {DRIVE}"))
    return places


def find_checkpoint(mount_drive: bool = False, build_model: Callable | None = None,
                    check: bool = True) -> Found:
    """The first of :func:`candidates` that exists (and, with ``check``, loads into ``build_model()``,
    default lesson 08's reference network): ``Found(path, where, looked, problems)``.

    ``mount_drive`` lets it mount Google Drive on Colab (Colab asks the learner first); without it,
    Drive is searched only when it is mounted already. Files that do not load are skipped, and the
    reasons kept in ``problems``.
    """
    looked, problems, drive_note = [], [], "Google Drive (not mounted: USE_DRIVE is False)"
    if mount_drive and on_colab():
        try:
            mount_google_drive()
        except Exception as exc:  # noqa: BLE001 - permission refused, a timeout...: say so, look elsewhere
            drive_note = f"Google Drive (could not be mounted: {type(exc).__name__}: {exc})"
    for path, where in candidates():
        looked.append(f"{path} ({where})")
        if not path.is_file():
            continue
        if check:
            problem = checkpoint_problem(path, build_model)
            if problem is not None:
                problems.append(problem)
                continue
        return Found(path, where, tuple(looked), tuple(problems))
    if on_colab() and not drive_mounted():
        looked.append(drive_note)
    return Found(None, "", tuple(looked), tuple(problems))


# --------------------------------------------------------------------------- bringing it: upload, Drive

def uploaded_files(value) -> list[tuple[str, bytes]]:
    """(name, content) for each file in a FileUpload's value: ipywidgets 8's tuple of dicts with
    'name' and 'content' (a memoryview), or ipywidgets 7's dict of name -> {'metadata', 'content'}."""
    if isinstance(value, dict):  # ipywidgets 7 (e.g. an older Colab)
        return [(str(name), bytes(item["content"])) for name, item in value.items()]
    return [(str(item["name"]), bytes(item["content"])) for item in value or ()]


def save_upload(name: str, content: bytes, folder=".", build_model: Callable | None = None) -> pathlib.Path:
    """Check that ``content`` is a state dict for ``build_model()``, then write it as ``folder/cifar10_model.pt``
    (where lesson 09 looks first); CheckpointError, and nothing written, when it is not."""
    load_checkpoint(content, build_model, name=name)
    target = pathlib.Path(folder) / CHECKPOINT
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(content)
    os.replace(partial, target)
    return target


def checkpoint_upload_widget(on_loaded: Callable[[pathlib.Path], None] | None = None, folder=".",
                             build_model: Callable | None = None):
    """A FileUpload button for lesson 08's ``cifar10_model.pt``, with a line that says what happened.

    A good file is written as ``folder/cifar10_model.pt`` (beside the notebook, where lesson 09
    looks first) and ``on_loaded(path)`` is called; a file that is not a state dict for
    ``build_model()`` is refused with the reason. The returned VBox has ``.upload`` (the FileUpload)
    and ``.status`` (the HTML line) as attributes.
    """
    import html

    import ipywidgets as widgets

    upload = widgets.FileUpload(accept=".pt", multiple=False, description=f"Upload {CHECKPOINT}",
                                layout=widgets.Layout(width="auto"))
    megabytes = 4 * cifar.count_parameters((build_model or cifar.reference_model)()) / 1e6  # float32 weights
    status = widgets.HTML(
        f"Choose lesson 08's <code>{CHECKPOINT}</code> (this network's weights take {megabytes:.1f} MB). If "
        "nothing happens after you choose it, the file is too large for this notebook's connection (a Jupyter "
        "server takes 10 MiB by default, Colab much less): put it beside this notebook with the file browser instead"
        + (" (Colab: the Files panel on the left)" if on_colab() else "") + ".")

    def show(text: str, ok: bool) -> None:
        colour = "green" if ok else "#b00"
        status.value = f'<span style="color:{colour}">{html.escape(text)}</span>'

    def changed(change) -> None:
        files = uploaded_files(change["new"])
        if not files:
            return
        name, content = files[0]
        try:
            path = save_upload(name, content, folder, build_model)
        except CheckpointError as exc:
            show(f"{exc}. Nothing was saved.", ok=False)
            return
        except OSError as exc:
            show(f"could not write {CHECKPOINT} in {folder}: {exc}", ok=False)
            return
        finally:
            with contextlib.suppress(Exception):  # don't keep megabytes in the widget (or in the saved notebook)
                upload.value = ()
        show(f"saved {name} ({len(content) / 1e6:.1f} MB) as {path}: it loads into lesson 08's network. "
             "Now run the model cell (below) again, and the cells after it.", ok=True)
        if on_loaded is not None:
            on_loaded(path)

    upload.observe(changed, names="value")
    box = widgets.VBox([upload, status])
    box.upload, box.status = upload, status
    return box


def save_to_drive(path=CHECKPOINT, confirm: bool = True) -> str:
    """On Colab, copy ``path`` (and its ``.json`` record) to MyDrive/cnn-course/ in Google Drive, mounting
    Drive first (Colab asks for permission); says what it did. Does nothing outside Colab or without
    ``confirm``."""
    path = pathlib.Path(path)
    if not on_colab():
        return (f"not on Colab: nothing copied. Lesson 09 finds {path.name} in this lesson's folder "
                f"(../{LESSON_08}/) by itself.")
    if not confirm:
        return ("not copied to Google Drive (SAVE_TO_DRIVE is False). Without a copy, download "
                f"{path.name} from the Files panel before this runtime ends; lesson 09 can take it as an upload.")
    if not path.is_file():
        return (f"no {path.name} here yet: train the full network on a GPU first (section 6), then run this "
                "cell again.")
    if not mount_google_drive():
        return "Google Drive was not mounted, so nothing was copied."
    target = drive_checkpoint()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, target)
    meta = path.with_suffix(".json")
    if meta.is_file():
        shutil.copy2(meta, target.with_suffix(".json"))
    return (f"copied {path} to {target} ({target.stat().st_size / 1e6:.1f} MB). In lesson 09, set "
            "USE_DRIVE = True to load it from there.")
