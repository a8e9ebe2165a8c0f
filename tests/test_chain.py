"""cnn_course.chain: lesson 09 finds, receives (upload, Google Drive) or replaces lesson 08's checkpoint.

Colab is simulated: its kernel has ``google.colab`` in ``sys.modules``, and Drive's mount point is
moved into a temporary folder. No GPU, no network, no real Drive.
"""

import functools
import html
import sys
import types

import ipywidgets
import numpy as np
import pytest
import torch

from cnn_course import chain, cifar

small = functools.partial(cifar.reference_model, width=8)


@pytest.fixture(autouse=True)
def lessons(tmp_path, monkeypatch):
    """The repository's layout: lessons/08_cifar10_on_gpu and lessons/09_inside_the_cnn (the working folder)."""
    for name in ("08_cifar10_on_gpu", "09_inside_the_cnn"):
        (tmp_path / "lessons" / name).mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "lessons" / "09_inside_the_cnn")
    monkeypatch.delenv(cifar.ENV_CHECKPOINT, raising=False)
    monkeypatch.delitem(sys.modules, "google.colab", raising=False)
    monkeypatch.setattr(chain, "DRIVE_MOUNT", str(tmp_path / "content" / "drive"))
    return tmp_path / "lessons"


@pytest.fixture
def colab(monkeypatch, tmp_path):
    """A simulated Colab runtime; ``mounts`` records every time Drive was mounted."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    mounts = []

    def mount():
        mounts.append(chain.DRIVE_MOUNT)
        (tmp_path / "content" / "drive" / "MyDrive").mkdir(parents=True, exist_ok=True)

    monkeypatch.setattr(chain, "_mount_drive", mount)
    return mounts


def save(path, model=None, seed=0):
    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save((model or small()).state_dict(), path)
    return path


def file_bytes(model=None, seed=0) -> bytes:
    import io

    torch.manual_seed(seed)
    buffer = io.BytesIO()
    torch.save((model or small()).state_dict(), buffer)
    return buffer.getvalue()


def browser_sends(upload: ipywidgets.FileUpload, name: str, content: bytes) -> None:
    """What ipywidgets 8 does when the browser sends a file: the comm message's state (a list of
    dicts, the bytes in a binary buffer) goes through ``set_state``, which deserialises it into
    ``value``, a tuple of dicts with 'name', 'type', 'size', 'content' (a memoryview), 'last_modified'."""
    upload.set_state({"value": [{"name": name, "type": "application/octet-stream", "size": len(content),
                                 "content": memoryview(content), "last_modified": 1767225600000}]})


# --------------------------------------------------------------------------- find_checkpoint's order

def test_beside_comes_first_then_lesson_08s_folder(lessons):
    assert chain.find_checkpoint(build_model=small).path is None
    sibling = save(lessons / "08_cifar10_on_gpu" / "cifar10_model.pt")
    found = chain.find_checkpoint(build_model=small)
    assert (found.path.resolve(), found.where) == (sibling.resolve(), "in lesson 08's folder")
    beside = save(lessons / "09_inside_the_cnn" / "cifar10_model.pt", seed=1)
    found = chain.find_checkpoint(build_model=small)
    assert (found.path.resolve(), found.where) == (beside.resolve(), "beside this notebook")
    assert "found your lesson 08 model beside this notebook" in found.message


def test_environment_variable_comes_before_everything(lessons, tmp_path, monkeypatch):
    save(lessons / "09_inside_the_cnn" / "cifar10_model.pt")
    elsewhere = save(tmp_path / "elsewhere" / "model.pt", seed=2)
    monkeypatch.setenv(cifar.ENV_CHECKPOINT, str(elsewhere))
    found = chain.find_checkpoint(build_model=small)
    assert found.path == elsewhere and "CNN_COURSE_CHECKPOINT" in found.where
    assert cifar.checkpoint_candidates()[0] == elsewhere


def test_a_file_that_does_not_fit_is_skipped_with_its_reason(lessons):
    (lessons / "09_inside_the_cnn" / "cifar10_model.pt").write_bytes(b"not a checkpoint")
    sibling = save(lessons / "08_cifar10_on_gpu" / "cifar10_model.pt")
    found = chain.find_checkpoint(build_model=small)
    assert found.path.resolve() == sibling.resolve()
    assert len(found.problems) == 1 and "is not a PyTorch checkpoint" in found.problems[0]


def test_drive_is_not_searched_off_colab(lessons, tmp_path):
    save(tmp_path / "content" / "drive" / "MyDrive" / "cnn-course" / "cifar10_model.pt")
    found = chain.find_checkpoint(mount_drive=True, build_model=small)
    assert found.path is None and not any("Drive" in place for place in found.looked)


def test_on_colab_drive_is_mounted_only_when_asked(lessons, colab):
    found = chain.find_checkpoint(build_model=small)
    assert found.path is None and colab == []
    assert "USE_DRIVE = True" in found.message and "Files panel" in found.message
    on_drive = chain.drive_checkpoint()
    found = chain.find_checkpoint(mount_drive=True, build_model=small)  # the learner agreed: mount, look
    assert colab == [chain.DRIVE_MOUNT] and found.path is None
    save(on_drive)
    found = chain.find_checkpoint(build_model=small)  # mounted already: searched without asking again
    assert (found.path, found.where) == (on_drive, "in your Google Drive") and len(colab) == 1


def test_on_colab_a_refused_mount_is_reported_not_raised(lessons, colab, monkeypatch):
    def refuse():
        raise ValueError("mount failed")

    monkeypatch.setattr(chain, "_mount_drive", refuse)
    found = chain.find_checkpoint(mount_drive=True, build_model=small)
    assert found.path is None and "could not be mounted: ValueError: mount failed" in found.message


def test_on_colab_the_local_copies_still_come_before_drive(lessons, colab):
    chain.mount_google_drive()
    save(chain.drive_checkpoint())
    beside = save(lessons / "09_inside_the_cnn" / "cifar10_model.pt", seed=3)
    assert chain.find_checkpoint(build_model=small).path.resolve() == beside.resolve()


# --------------------------------------------------------------------------- lesson 08 saves to Drive

def test_save_to_drive_then_lesson_09_finds_it(lessons, colab):
    here = lessons / "08_cifar10_on_gpu"
    save(here / "cifar10_model.pt")
    (here / "cifar10_model.json").write_text('{"test_accuracy": 0.94}\n')
    message = chain.save_to_drive(here / "cifar10_model.pt")
    target = chain.drive_checkpoint()
    assert target.is_file() and target.with_suffix(".json").is_file() and str(target) in message
    assert colab == [chain.DRIVE_MOUNT]
    for name in ("cifar10_model.pt", "cifar10_model.json"):  # lesson 09 runs in a new runtime: only Drive is left
        (here / name).unlink()
    assert chain.find_checkpoint(build_model=small).path == target


def test_save_to_drive_does_nothing_unless_on_colab_and_asked(lessons, colab, monkeypatch):
    save(lessons / "08_cifar10_on_gpu" / "cifar10_model.pt")
    path = lessons / "08_cifar10_on_gpu" / "cifar10_model.pt"
    assert "SAVE_TO_DRIVE is False" in chain.save_to_drive(path, confirm=False) and colab == []
    assert "no cifar10_model.pt here yet" in chain.save_to_drive(lessons / "nothing" / "cifar10_model.pt")
    monkeypatch.delitem(sys.modules, "google.colab")
    assert chain.save_to_drive(path).startswith("not on Colab") and colab == []
    assert not chain.drive_checkpoint().exists()


# --------------------------------------------------------------------------- the upload widget

def test_upload_lands_where_lesson_09_loads_it(lessons):
    loaded = []
    box = chain.checkpoint_upload_widget(on_loaded=loaded.append, build_model=small)
    assert isinstance(box.upload, ipywidgets.FileUpload)
    assert "file browser" in box.status.value  # the way round a connection too small for the file
    content = file_bytes(seed=4)
    seen = []
    box.upload.observe(lambda change: seen.append(change["new"]), names="value")
    browser_sends(box.upload, "cifar10_model (1).pt", content)
    sent = next(value for value in seen if value)  # the value really was ipywidgets 8's
    file = sent[0]
    assert isinstance(sent, tuple) and isinstance(file["content"], memoryview)
    assert (file["name"], file["size"], file["last_modified"].year) == ("cifar10_model (1).pt", len(content), 2026)
    target = lessons / "09_inside_the_cnn" / "cifar10_model.pt"
    assert target.read_bytes() == content
    assert [p.resolve() for p in loaded] == [target.resolve()]
    assert "saved cifar10_model (1).pt" in box.status.value and "run the model cell" in box.status.value
    assert box.upload.value == ()  # the megabytes are not kept in the widget
    found = chain.find_checkpoint(build_model=small)
    assert found.where == "beside this notebook" and found.path.read_bytes() == content
    expected = torch.load(target, weights_only=True)
    model = chain.load_checkpoint(found.path, small)
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("content, reason", [
    (b"\x89PNG\r\n\x1a\n not a model", "is not a PyTorch checkpoint"),
    ("tensor", "holds a Tensor, not a state dict"),
    ("other", "is not a state dict for lesson 08's network"),
    ("wider", "of another shape"),
])
def test_a_file_that_is_not_a_state_dict_for_the_network_is_refused_clearly(lessons, content, reason):
    if content == "tensor":
        import io

        buffer = io.BytesIO()
        torch.save(torch.zeros(3), buffer)
        content = buffer.getvalue()
    elif content == "other":
        content = file_bytes(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.Linear(8, 10)))
    elif content == "wider":
        content = file_bytes(cifar.reference_model(width=16))
    loaded = []
    box = chain.checkpoint_upload_widget(on_loaded=loaded.append, build_model=small)
    browser_sends(box.upload, "mine.pt", content)
    status = html.unescape(box.status.value)
    assert reason in status and "Nothing was saved" in status
    assert loaded == [] and not (lessons / "09_inside_the_cnn" / "cifar10_model.pt").exists()


def test_a_whole_pickled_model_is_refused_with_the_fix(lessons):
    import io

    buffer = io.BytesIO()
    torch.save(small(), buffer)
    with pytest.raises(chain.CheckpointError, match="state_dict"):
        chain.save_upload("model.pt", buffer.getvalue(), build_model=small)
    assert not (lessons / "09_inside_the_cnn" / "cifar10_model.pt").exists()


def test_ipywidgets_7_value_format_is_read_too():
    content = file_bytes()
    assert chain.uploaded_files({"m.pt": {"metadata": {"name": "m.pt"}, "content": content}}) == [("m.pt", content)]
    upload = ipywidgets.FileUpload()
    browser_sends(upload, "m.pt", content)
    assert chain.uploaded_files(upload.value) == [("m.pt", content)]
    assert chain.uploaded_files(()) == []


# --------------------------------------------------------------------------- lesson 09's model cell

def tiny_data(n=100):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.integers(0, 256, (n, 3, 32, 32), dtype=np.uint8))
    y = torch.from_numpy(rng.integers(0, 10, n))
    return cifar.Data(x, y, x[:20], y[:20], "test", real=False)


def test_trained_model_loads_the_learners_network_and_says_from_where(lessons):
    model = cifar.reference_model()
    save(lessons / "08_cifar10_on_gpu" / "cifar10_model.pt", model)
    got, where = cifar.trained_model(cifar.settings_for("smoke", "cpu"), tiny_data())
    assert where.startswith("loaded your lesson 08 model from ../08_cifar10_on_gpu/cifar10_model.pt")
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in got.state_dict().items())
    assert not got.training


def test_the_stand_in_is_the_last_resort_and_says_so(lessons):
    (lessons / "08_cifar10_on_gpu" / "cifar10_model.pt").write_bytes(b"broken")
    model, where = cifar.trained_model(cifar.settings_for("smoke", "cpu"), tiny_data())
    assert "no usable lesson 08 model found: using the small STAND-IN model (width 8" in where
    assert "is not a PyTorch checkpoint" in where  # the file that was there, and why it was not used
    assert "To use yours" in where and "with the button above" in where
    (lessons / "08_cifar10_on_gpu" / "cifar10_model.pt").unlink()
    _, where = cifar.trained_model(cifar.settings_for("smoke", "cpu"), tiny_data())
    assert where.startswith("no trained lesson 08 model found: using the small STAND-IN model")
    assert model(torch.zeros(1, 3, 32, 32)).shape == (1, 10)
