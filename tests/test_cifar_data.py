"""cnn_course.cifar: CIFAR-10 loading (fake data in the official format through torchvision's real
CIFAR10 class, an ImageFolder copy), modes, the device-resident loader, checkpoints. No network."""

import pickle

import numpy as np
import pytest
import torch

from cnn_course import cifar


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any download attempt fails at once, as on an offline machine."""
    import torchvision.datasets.utils as tv_utils

    def refuse(*args, **kwargs):
        raise OSError("network disabled in tests")

    monkeypatch.setattr(tv_utils, "download_url", refuse)
    monkeypatch.setattr("urllib.request.urlopen", refuse)
    monkeypatch.delenv(cifar.ENV_DATA, raising=False)
    monkeypatch.delenv(cifar.ENV_MODE, raising=False)


def _images(n, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8), rng.integers(0, 10, n)


def test_fake_cifar10_round_trip_through_torchvision(tmp_path):
    (tx, ty), (vx, vy) = _images(23, 0), _images(7, 1)
    cifar.write_fake_cifar10(tmp_path, images_labels=((tx, ty), (vx, vy)))
    assert cifar.layout(tmp_path) == "fake"
    x, y = cifar.load_split(tmp_path, train=True)
    assert x.dtype == torch.uint8 and x.shape == (23, 3, 32, 32) and y.dtype == torch.int64
    assert torch.equal(x.permute(0, 2, 3, 1), torch.from_numpy(tx))  # pixel order: official CHW rows
    assert torch.equal(y, torch.from_numpy(ty))
    x, y = cifar.load_split(tmp_path, train=False)
    assert torch.equal(x.permute(0, 2, 3, 1), torch.from_numpy(vx)) and torch.equal(y, torch.from_numpy(vy))


def test_fake_files_are_in_the_official_format(tmp_path):
    """What the real class reads: five training batches, a test batch, the meta file with label names."""
    from torchvision.datasets import CIFAR10

    cifar.write_fake_cifar10(tmp_path, n_train=50, n_test=10)
    folder = tmp_path / "cifar-10-batches-py"
    for name, _ in CIFAR10.train_list + CIFAR10.test_list:
        with open(folder / name, "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        assert entry["data"].dtype == np.uint8 and entry["data"].shape[1] == 3072
        assert len(entry["labels"]) == len(entry["data"])
    with open(folder / "batches.meta", "rb") as f:
        assert pickle.load(f, encoding="latin1")["label_names"] == list(cifar.CLASSES)
    ds = cifar._torchvision_class(fake=True)(root=str(tmp_path), train=True)
    assert isinstance(ds, CIFAR10) and len(ds) == 50 and ds.classes == list(cifar.CLASSES)


def test_real_class_still_checks_md5_without_the_marker(tmp_path):
    """Files that only look like CIFAR-10 are not taken for the real thing."""
    cifar.write_fake_cifar10(tmp_path, n_train=20, n_test=5)
    (tmp_path / "cifar-10-batches-py" / cifar.FAKE_MARKER).unlink()
    assert cifar.layout(tmp_path) == "torchvision"
    with pytest.raises(cifar.DataNotAvailable, match="could not be loaded"):
        cifar.load_split(tmp_path, train=False)


def test_image_folder_copy(tmp_path):
    (tx, ty), (vx, vy) = _images(30, 2), _images(12, 3)
    cifar.write_image_folder(tmp_path, "train", tx, ty, fmt="png")
    cifar.write_image_folder(tmp_path, "test", vx, vy, fmt="png")
    assert cifar.layout(tmp_path) == "imagefolder"
    x, y = cifar.load_split(tmp_path, train=False)
    order = np.argsort(vy, kind="stable")  # read back class by class
    assert torch.equal(x.permute(0, 2, 3, 1), torch.from_numpy(vx[order]))
    assert torch.equal(y, torch.from_numpy(vy[order]).long())
    assert (tmp_path / "cache_test_uint8.pt").is_file()
    x2, y2 = cifar.load_split(tmp_path, train=False)  # from the cache now
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_jpeg_copy_decodes_close_to_the_originals(tmp_path):
    (tx, ty) = _images(10, 4)
    smooth = np.repeat(np.repeat(tx[:, ::8, ::8], 8, axis=1), 8, axis=2)  # blocky images survive JPEG well
    cifar.write_image_folder(tmp_path, "test", smooth, ty, fmt="jpg")
    x, _ = cifar.load_split(tmp_path, train=False)
    assert x.shape == (10, 3, 32, 32)


def test_missing_data_raises_without_download(tmp_path):
    with pytest.raises(cifar.DataNotAvailable, match="no CIFAR-10"):
        cifar.load_split(tmp_path / "empty", download=False)
    with pytest.raises(cifar.DataNotAvailable, match="could not be loaded"):
        cifar.load_split(tmp_path / "empty", download=True)  # the download fails: no network


def test_environment_variable_points_at_a_local_copy(tmp_path, monkeypatch):
    cifar.write_fake_cifar10(tmp_path / "copy", n_train=40, n_test=10)
    monkeypatch.setenv(cifar.ENV_DATA, str(tmp_path / "copy"))
    assert cifar.default_root() == tmp_path / "copy"
    settings = cifar.settings_for("quick", "cpu")
    data = cifar.get_data(settings)
    assert settings.mode == "quick" and len(data.train_images) == 40 and "FAKE" in data.source and not data.real


def test_modes(monkeypatch):
    assert cifar.settings_for(device="cpu").mode == "quick"
    monkeypatch.setenv(cifar.ENV_MODE, "smoke")
    s = cifar.settings_for(device="cpu")
    assert s.mode == "smoke" and "CNN_COURSE_MODE" in s.reason
    monkeypatch.setenv(cifar.ENV_MODE, "full")
    s = cifar.settings_for(device="cpu")
    assert s.mode == "full" and s.width == 64 and s.train_subset is None and s.amp_dtype is None
    monkeypatch.setenv(cifar.ENV_MODE, "fast")
    with pytest.raises(ValueError, match="'fast'"):
        cifar.settings_for(device="cpu")


def test_no_data_switches_to_smoke_mode_and_says_so(tmp_path, monkeypatch):
    monkeypatch.setenv(cifar.ENV_DATA, str(tmp_path / "nothing"))
    settings = cifar.settings_for("quick", "cpu")
    data = cifar.get_data(settings)
    assert settings.mode == "smoke" and "switched to smoke" in settings.reason
    assert not data.real and "FAKE" in data.source
    assert data.train_images.dtype == torch.uint8 and data.train_images.shape[1:] == (3, 32, 32)


def test_synthetic_images_are_deterministic_and_balanced():
    a, la = cifar.synthetic_images(400, seed=3)
    b, lb = cifar.synthetic_images(400, seed=3)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert a.dtype == np.uint8 and a.shape == (400, 32, 32, 3)
    assert np.bincount(la, minlength=10).min() > 15


def test_device_loader_batches_everything_once_per_epoch():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1).expand(10, 3, 4, 4).contiguous()
    y = torch.arange(10)
    loader = cifar.DeviceLoader(x, y, 4, "cpu", shuffle=True, seed=1)
    assert len(loader) == 3
    seen = torch.cat([labels for _, labels in loader])
    assert sorted(seen.tolist()) == list(range(10))
    for images, labels in loader:  # images follow their labels, normalised
        expected = cifar.normalize(x[labels])
        assert images.dtype == torch.float32 and torch.allclose(images, expected)
    assert len(cifar.DeviceLoader(x, y, 4, "cpu", drop_last=True)) == 2
    calls = []
    aug = cifar.DeviceLoader(x, y, 5, "cpu", augment=lambda b, generator=None: calls.append(len(b)) or b)
    list(aug)
    assert calls == [5, 5]  # one call per batch: batched augmentation


def test_normalize_round_trip():
    x = torch.randint(0, 256, (3, 3, 5, 5), dtype=torch.uint8)
    assert torch.allclose(cifar.denormalize(cifar.normalize(x)) * 255, x.float(), atol=1e-3)


def test_cutout_zeroes_one_square_per_image():
    x = torch.ones(50, 3, 32, 32)
    out = cifar.random_cutout(x, 8, torch.Generator().manual_seed(0))
    zeros = (out[:, 0] == 0).flatten(1).sum(1)
    assert zeros.max() == 64 and zeros.min() > 0
    assert torch.equal(out[:, 0], out[:, 2])


def test_reference_model_size():
    assert cifar.count_parameters(cifar.reference_model()) == 6_573_120
    model = cifar.reference_model(num_classes=7, width=8, dropout=0.5).eval()
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 7)


def test_checkpoint_keeps_the_better_run(tmp_path):
    path = tmp_path / "m.pt"
    a, b = cifar.reference_model(width=8), cifar.reference_model(width=8)
    assert cifar.save_checkpoint(a, path, {"test_accuracy": 0.9})
    assert not cifar.save_checkpoint(b, path, {"test_accuracy": 0.5})
    state = torch.load(path, weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in a.state_dict().items())
    assert cifar.save_checkpoint(b, path, {"test_accuracy": 0.95})


def test_grader_refuses_fake_test_set(tmp_path):
    cifar.write_fake_cifar10(tmp_path, n_train=10, n_test=10)
    with pytest.raises(cifar.DataNotAvailable, match="not available to the grader"):
        cifar.grade_checkpoint(cifar.reference_model, root=tmp_path)


def test_the_training_clock_drives_the_schedule_and_stops_training_when_spent(monkeypatch):
    now = [100.0]
    monkeypatch.setattr(cifar.time, "perf_counter", lambda: now[0])
    clock = cifar.TrainingClock(10.0, warmup=0.2)
    model = torch.nn.Linear(2, 2)
    settings = cifar.settings_for("smoke", "cpu")
    optimizer, scheduler = cifar.make_optimizer(model, settings, steps=0, clock=clock)
    peak = settings.lr

    def one_epoch(batches):  # a step takes one second of the clock
        lrs = []
        for _ in batches:
            lrs.append(optimizer.param_groups[0]["lr"])
            now[0] += 1.0
            optimizer.step()
            scheduler.step()
        return lrs

    first = clock.batches(range(6))
    with clock.running():
        lrs = one_epoch(first)
    assert first.given == 6 and len(first) == 6 and clock.progress() == pytest.approx(0.6)
    assert lrs[0] == pytest.approx(0.05 * peak) and lrs[2] == pytest.approx(peak)  # warm-up: 2 of 10 s
    assert lrs[3] == pytest.approx(peak * 0.875) and lrs[3] > lrs[4] > lrs[5]       # then linearly down
    now[0] += 50.0  # evaluation between epochs: not training time
    assert clock.progress() == pytest.approx(0.6) and not clock.spent
    second = clock.batches(range(6))
    with clock.running():
        one_epoch(second)
    assert second.given == 4 and clock.spent  # stopped mid-epoch when the 10 s were spent
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.0)


def test_quick_mode_trains_on_everything_for_a_fixed_time():
    quick = cifar.settings_for("quick", "cpu")
    assert quick.train_subset is None and quick.minutes == cifar.QUICK_MINUTES
    assert "minutes of training" in quick.describe()
