"""CIFAR-10 for lessons 08 and 09: loading, a device-resident batch pipeline, modes, the reference network.

Where the data comes from (first match wins):

1. ``$CNN_COURSE_CIFAR10`` (or the ``root`` argument): a folder holding either torchvision's
   copy (``cifar-10-batches-py/``) or an ImageFolder copy (``train/<class>/*.jpg`` and
   ``test/<class>/*.jpg``), for offline machines;
2. the default folder (``data/cifar10`` in the repository, else in the working directory),
   filled by ``torchvision.datasets.CIFAR10(download=True)`` on first use.

Modes (``$CNN_COURSE_MODE``, or the ``mode`` argument):

- ``full``: the whole data set and the full recipe; meant for a GPU (about 94% test accuracy);
- ``quick``: the whole training set and a narrower network, trained for a fixed time (3 minutes)
  with the clock driving the learning-rate schedule (:class:`TrainingClock`): made for a CPU;
- ``smoke``: no download at all; a small fake data set in the official file format,
  generated on the spot (under a minute on a CPU; for CI and for checking the notebook runs).

Unset (or ``auto``): ``full`` with a CUDA GPU, ``quick`` without one, and ``smoke`` when
CIFAR-10 can be neither found nor downloaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import pathlib
import pickle
import time
from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Per-channel mean and standard deviation of the official training set (pixels scaled to [0, 1]).
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)

ENV_DATA = "CNN_COURSE_CIFAR10"
ENV_MODE = "CNN_COURSE_MODE"
MODES = ("full", "quick", "smoke")
FAKE_MARKER = "FAKE_CIFAR10.txt"
CHECKPOINT = "cifar10_model.pt"
# Size in bytes of the archive torchvision downloads (cifar-10-python.tar.gz, from the CIFAR-10 page).
ARCHIVE_BYTES = 170_498_071
QUICK_MINUTES = 3.0
# What quick mode reached when the team ran lesson 08 on a 2-core CPU (2026-11-30, the JPEG copy of CIFAR-10, torch
# 2.13 on an AMD EPYC with AVX2, channels-last: 664 training images/s, so 3 minutes are about 3 epochs). The notebook
# prints its own result.
QUICK_MEASURED = ("80.5% validation accuracy (80.9% with test-time flips; 80.6% and 80.9% on the test set) after "
                  "3 minutes of training on a 2-core CPU")


class DataNotAvailable(RuntimeError):
    """CIFAR-10 could not be found or downloaded."""


# --------------------------------------------------------------------------- locating the data

def repository_root() -> pathlib.Path | None:
    """The course repository this package sits in (None when installed elsewhere)."""
    here = pathlib.Path(__file__).resolve().parent.parent
    return here if (here / "pyproject.toml").is_file() and (here / "cnn_course").is_dir() else None


def default_root() -> pathlib.Path:
    """``$CNN_COURSE_CIFAR10`` if set, else ``<repository>/data/cifar10`` (git-ignored), else ``./data/cifar10``."""
    if os.environ.get(ENV_DATA):
        return pathlib.Path(os.environ[ENV_DATA]).expanduser()
    repo = repository_root()
    return (repo / "data" / "cifar10") if repo is not None else pathlib.Path("data") / "cifar10"


def layout(root) -> str | None:
    """'torchvision', 'fake' (fake data in torchvision's format), 'imagefolder' or None for a data folder."""
    root = pathlib.Path(root)
    batches = root / "cifar-10-batches-py"
    if (batches / FAKE_MARKER).is_file():
        return "fake"
    if (batches / "test_batch").is_file():
        return "torchvision"
    if (root / "train").is_dir() or (root / "test").is_dir():
        return "imagefolder"
    return None


def _torchvision_class(fake: bool):
    from torchvision.datasets import CIFAR10

    if not fake:
        return CIFAR10

    class FakeCIFAR10(CIFAR10):
        """torchvision's CIFAR10, reading files written by write_fake_cifar10: same code, no md5 check.

        torchvision skips the checksum of a file whose md5 is None (it still checks the file exists).
        """

        train_list = [[name, None] for name, _ in CIFAR10.train_list]
        test_list = [[name, None] for name, _ in CIFAR10.test_list]
        meta = {**CIFAR10.meta, "md5": None}

    return FakeCIFAR10


def _image_folder_split(root: pathlib.Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode ``root/split/<class>/*`` into a uint8 tensor (N, 3, 32, 32); cached beside the images."""
    cache = root / f"cache_{split}_uint8.pt"
    if cache.is_file():
        cached = torch.load(cache)
        return cached["images"], cached["labels"]
    from PIL import Image

    images, labels = [], []
    for label, name in enumerate(CLASSES):
        folder = root / split / name
        if not folder.is_dir():
            raise DataNotAvailable(f"{folder} is missing: an ImageFolder copy needs one folder per class")
        for path in sorted(folder.iterdir()):
            with Image.open(path) as img:
                images.append(np.asarray(img.convert("RGB").resize((32, 32)), dtype=np.uint8))
            labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    y = torch.tensor(labels, dtype=torch.int64)
    with contextlib.suppress(OSError):
        torch.save({"images": x, "labels": y}, cache)
    return x, y


def load_split(root=None, train: bool = True, download: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of CIFAR-10 as ``(images uint8 (N, 3, 32, 32), labels int64 (N,))`` on the CPU.

    ``root`` defaults to :func:`default_root`. torchvision's copy (real or fake) is read with
    ``torchvision.datasets.CIFAR10``; an ImageFolder copy with PIL. Raises DataNotAvailable.
    """
    root = pathlib.Path(root) if root is not None else default_root()
    kind = layout(root)
    if kind == "imagefolder":
        return _image_folder_split(root, "train" if train else "test")
    if kind is None and not download:
        raise DataNotAvailable(f"no CIFAR-10 in {root} (expected cifar-10-batches-py/ or train/ and test/)")
    try:
        ds = _torchvision_class(kind == "fake")(root=str(root), train=train, download=download and kind is None)
    except Exception as exc:  # no network, corrupted files...
        raise DataNotAvailable(f"CIFAR-10 could not be loaded from {root} ({type(exc).__name__}: {exc})") from exc
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(ds.targets, dtype=torch.int64)


# --------------------------------------------------------------------------- fake data

def synthetic_images(n: int, seed: int = 0, num_classes: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """A learnable stand-in for CIFAR-10: uint8 (n, 32, 32, 3) images and labels (n,).

    Each class has a smooth random colour pattern; an image is its class pattern, shifted
    by up to 4 pixels, flipped at random, faded towards grey and covered in noise, so that a
    small CNN learns it in seconds but can also overfit it.
    """
    rng = np.random.default_rng(seed)
    proto_rng = np.random.default_rng(12345)  # the same classes for every seed
    coarse = torch.from_numpy(proto_rng.uniform(0, 1, (num_classes, 3, 4, 4)).astype(np.float32))
    protos = F.interpolate(coarse, size=(40, 40), mode="bicubic", align_corners=False).clamp(0, 1).numpy()
    labels = rng.integers(0, num_classes, n)
    dy, dx = rng.integers(0, 9, n), rng.integers(0, 9, n)
    images = np.empty((n, 3, 32, 32), np.float32)
    for i in range(n):  # building a data set, not a training step: a loop is fine here
        img = protos[labels[i], :, dy[i]:dy[i] + 32, dx[i]:dx[i] + 32]
        images[i] = img[:, :, ::-1] if rng.random() < 0.5 else img
    other = protos[rng.integers(0, num_classes, n), :, 4:36, 4:36][:, :, ::-1, :]  # a distractor: another class
    fade = rng.uniform(0.25, 0.6, (n, 1, 1, 1)).astype(np.float32)
    images = fade * images + (0.8 - fade) * other + 0.1 + rng.normal(0, 0.2, images.shape).astype(np.float32)
    images = (np.clip(images, 0, 1) * 255).round().astype(np.uint8).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels.astype(np.int64)


def write_fake_cifar10(root, n_train: int = 500, n_test: int = 100, seed: int = 0,
                       images_labels: tuple | None = None) -> pathlib.Path:
    """Write a small data set in the official CIFAR-10 pickle format under ``root/cifar-10-batches-py``.

    ``images_labels`` = ``((train_x, train_y), (test_x, test_y))`` with uint8 (N, 32, 32, 3)
    images; default :func:`synthetic_images`. A marker file tells :func:`load_split` that the
    files are fake (their md5 sums cannot match the official ones). Returns ``root``.
    """
    root = pathlib.Path(root)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    if images_labels is None:
        images_labels = (synthetic_images(n_train, seed), synthetic_images(n_test, seed + 1))
    (train_x, train_y), (test_x, test_y) = images_labels

    def batch(x, y, name):
        x = np.asarray(x, dtype=np.uint8)
        return {"batch_label": name, "labels": [int(v) for v in y],
                "data": x.transpose(0, 3, 1, 2).reshape(len(x), 3072),  # rows: 1024 red, 1024 green, 1024 blue
                "filenames": [f"fake_{name.replace(' ', '_')}_{i}.png" for i in range(len(x))]}

    parts = np.array_split(np.arange(len(train_x)), 5)
    for k, idx in enumerate(parts, start=1):
        with open(folder / f"data_batch_{k}", "wb") as f:
            pickle.dump(batch(train_x[idx], np.asarray(train_y)[idx], f"training batch {k} of 5"), f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump(batch(test_x, test_y, "testing batch 1 of 1"), f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": list(CLASSES), "num_cases_per_batch": len(parts[0]), "num_vis": 3072}, f,
                    protocol=2)
    (folder / FAKE_MARKER).write_text("Fake CIFAR-10 written by cnn_course.cifar.write_fake_cifar10: not real data.\n")
    return root


def write_image_folder(root, split: str, images: np.ndarray, labels, fmt: str = "png") -> pathlib.Path:
    """Write uint8 (N, 32, 32, 3) images as ``root/split/<class>/<index>.<fmt>`` (an ImageFolder copy)."""
    from PIL import Image

    root = pathlib.Path(root)
    for name in CLASSES:
        (root / split / name).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(images, labels)):
        Image.fromarray(np.asarray(img, dtype=np.uint8)).save(root / split / CLASSES[int(label)] / f"{i:05d}.{fmt}")
    return root


# --------------------------------------------------------------------------- modes

@dataclasses.dataclass
class Settings:
    """Everything a mode decides. Printed by the notebook so a reader knows what ran."""

    mode: str
    device: torch.device
    reason: str
    epochs: int
    batch_size: int
    width: int                 # channels of the network's first block (64 is the full network)
    train_subset: int | None   # None: the whole training set
    test_subset: int | None
    lr: float
    weight_decay: float
    label_smoothing: float
    max_shift: int
    cutout: int
    experiment_epochs: int     # for the overfitting experiment (three runs)
    experiment_subset: int | None
    amp_dtype: torch.dtype | None
    channels_last: bool
    depth_blocks: int = 4      # the depth experiment: blocks of cifar.deep_network
    depth_width: int = 8
    depth_steps: int = 20      # training steps for each of the two deep networks
    minutes: float | None = None  # a training-time budget that drives the schedule (quick mode); epochs is then a cap
    warmup: float = 0.2        # fraction of the steps (or of the budget) spent warming the learning rate up

    def describe(self) -> str:
        subset = "all" if self.train_subset is None else f"{self.train_subset:,}"
        amp = "off" if self.amp_dtype is None else str(self.amp_dtype).replace("torch.", "")
        length = f"{self.minutes:g} minutes of training" if self.minutes else f"{self.epochs} epochs"
        return (f"mode {self.mode!r} on {self.device} ({self.reason}): {length}, batch {self.batch_size}, "
                f"width {self.width}, training images: {subset}, mixed precision: {amp}, "
                f"channels-last: {self.channels_last}")


def amp_dtype_for(device) -> torch.dtype | None:
    """bfloat16 on GPUs that support it, float16 on older GPUs, None (float32) on a CPU."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def settings_for(mode: str | None = None, device=None) -> Settings:
    """The settings of ``mode`` ('full', 'quick', 'smoke'; None or 'auto': read $CNN_COURSE_MODE, then detect)."""
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    requested = (mode or os.environ.get(ENV_MODE, "") or "auto").strip().lower()
    if requested not in (*MODES, "auto"):
        raise ValueError(f"unknown mode {requested!r} (from {ENV_MODE}?); choose one of {', '.join(MODES)} or auto")
    if requested == "auto":
        requested = "full" if device.type == "cuda" else "quick"
        reason = "detected: a CUDA GPU" if device.type == "cuda" else "detected: no GPU"
    else:
        reason = f"chosen by {ENV_MODE}" if mode is None else "chosen by the caller"
    amp = amp_dtype_for(device)
    # Channels-last (NHWC) on every device: GPUs' tensor cores want it, and oneDNN's CPU convolutions are faster
    # with it too (the quick network on a 2-core CPU, torch 2.13: 467 instead of 377 training images/s).
    cl = True
    if requested == "full":
        return Settings("full", device, reason, epochs=24, batch_size=512, width=64, train_subset=None,
                        test_subset=None, lr=0.4, weight_decay=5e-4, label_smoothing=0.2, max_shift=4, cutout=8,
                        experiment_epochs=12, experiment_subset=10_000, amp_dtype=amp, channels_last=cl,
                        depth_blocks=20, depth_width=16, depth_steps=400)
    if requested == "quick":
        # Lesson 08's recipe tuned for 3 minutes (about 2 epochs on a 2-core CPU), measured on the whole training set
        # with benchmarks/cifar10_cpu.py's train_lesson_recipe_for_time (test accuracy with flips): width 16, lr 0.4,
        # shifts of 2 pixels: 77.9%; flips only: 79.1%; and lr 0.8: 79.4%; and width 12 (more images per second): 80.8%.
        return Settings("quick", device, reason, epochs=30, batch_size=128, width=12, train_subset=None,
                        test_subset=None, lr=0.8, weight_decay=5e-4, label_smoothing=0.2, max_shift=0, cutout=0,
                        experiment_epochs=4, experiment_subset=2_000, amp_dtype=amp, channels_last=cl,
                        depth_blocks=20, depth_width=8, depth_steps=150, minutes=QUICK_MINUTES, warmup=0.15)
    return Settings("smoke", device, reason, epochs=3, batch_size=50, width=8, train_subset=400,
                    test_subset=200, lr=0.2, weight_decay=5e-4, label_smoothing=0.1, max_shift=2, cutout=0,
                    experiment_epochs=2, experiment_subset=200, amp_dtype=amp, channels_last=cl,
                        depth_blocks=4, depth_width=8, depth_steps=16)


@dataclasses.dataclass
class Data:
    train_images: torch.Tensor  # uint8 (N, 3, 32, 32), on the CPU
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str
    real: bool                  # False for the fake stand-in


def _subset(x, y, n, seed):
    if n is None or n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def get_data(settings: Settings, root=None, download: bool = True, seed: int = 0) -> Data:
    """CIFAR-10 for the mode (subsets in quick mode); the fake stand-in in smoke mode or when none is found.

    When real data was asked for but cannot be had, the mode switches to smoke (the settings
    object is changed in place) and the returned ``source`` says why.
    """
    root = pathlib.Path(root) if root is not None else default_root()
    if settings.mode != "smoke":
        try:
            train = load_split(root, train=True, download=download)
            test = load_split(root, train=False, download=False)
            kind = layout(root)
            real = kind != "fake"
            x, y = _subset(*train, settings.train_subset, seed)
            tx, ty = _subset(*test, settings.test_subset, seed + 1)
            what = {"imagefolder": "an ImageFolder copy", "fake": "FAKE data in CIFAR-10 format"}.get(kind, "CIFAR-10")
            return Data(x, y, tx, ty, f"{what} in {root}: {len(x):,} training and {len(tx):,} test images", real)
        except DataNotAvailable as exc:
            missing = str(exc)
        fallback = settings_for("smoke", settings.device)
        for field in dataclasses.fields(Settings):
            if field.name not in ("device",):
                setattr(settings, field.name, getattr(fallback, field.name))
        settings.reason = f"switched to smoke: {missing}"
    fake_root = (repository_root() or pathlib.Path(".")) / "data" / "cifar10-fake"
    if repository_root() is None:
        fake_root = pathlib.Path("data") / "cifar10-fake"
    try:
        write_fake_cifar10(fake_root, settings.train_subset or 400, settings.test_subset or 200, seed=seed)
        x, y = load_split(fake_root, train=True)
        tx, ty = load_split(fake_root, train=False)
    except OSError:  # read-only folder: same images, without the file round trip
        (a, b), (c, d) = synthetic_images(settings.train_subset or 400, seed), synthetic_images(200, seed + 1)
        x, y = torch.from_numpy(a).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(b)
        tx, ty = torch.from_numpy(c).permute(0, 3, 1, 2).contiguous(), torch.from_numpy(d)
    return Data(x, y, tx, ty, f"FAKE stand-in data (not CIFAR-10): {len(x):,} training and {len(tx):,} test images "
                              "of coloured patterns, written in CIFAR-10's file format", real=False)


# --------------------------------------------------------------------------- the batch pipeline

def normalize(images: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> float, minus the CIFAR-10 mean, over the standard deviation, per channel."""
    mean = torch.tensor(MEAN, device=images.device, dtype=dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=images.device, dtype=dtype).view(1, 3, 1, 1)
    return (images.to(dtype) / 255 - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`normalize`, as floats in [0, 1] (for showing images)."""
    mean = torch.tensor(MEAN, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * std + mean).clamp(0, 1)


def random_cutout(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero one random size x size square per image (squares may reach past the border), batched."""
    if size <= 0:
        return x
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device, generator=generator)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device, generator=generator)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    top, left = cy - size // 2, cx - size // 2
    inside = (rows >= top) & (rows < top + size) & (cols >= left) & (cols < left + size)
    return x * (~inside).unsqueeze(1).to(x.dtype)


class DeviceLoader:
    """Batches from a data set that lives on the device as one uint8 tensor: no per-image Python.

    Each epoch draws one permutation, then per batch: index (gather), convert and normalise,
    augment (``augment(x, generator=...)``), cut out, and lay out channels-last, all as
    tensor operations on the device. Yields ``(images float32, labels int64)``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, device, *,
                 shuffle: bool = False, augment: Callable | None = None, cutout: int = 0, drop_last: bool = False,
                 channels_last: bool = False, seed: int = 0):
        self.device = torch.device(device)
        self.images = images.to(self.device)
        self.labels = labels.to(self.device)
        self.batch_size, self.shuffle, self.augment = batch_size, shuffle, augment
        self.cutout, self.drop_last, self.channels_last = cutout, drop_last, channels_last
        self.generator = torch.Generator(device=self.device).manual_seed(seed)

    def __len__(self) -> int:
        n = len(self.images)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        order = (torch.randperm(n, device=self.device, generator=self.generator) if self.shuffle
                 else torch.arange(n, device=self.device))
        for b in range(len(self)):
            idx = order[b * self.batch_size:(b + 1) * self.batch_size]
            x = normalize(self.images[idx])
            if self.augment is not None:
                x = self.augment(x, generator=self.generator)
            if self.cutout:
                x = random_cutout(x, self.cutout, self.generator)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x, self.labels[idx]


# --------------------------------------------------------------------------- the reference network

def conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution (no bias: batch norm has one) -> batch norm -> ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class Residual(nn.Module):
    """x + f(x): the block learns a correction to its input, which keeps deep stacks trainable."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x):
        return x + self.body(x)


class Scale(nn.Module):
    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor

    def extra_repr(self) -> str:
        return f"factor={self.factor}"


def reference_model(num_classes: int = 10, width: int = 64, dropout: float = 0.0) -> nn.Sequential:
    """The lesson-08 network, a ResNet-9 in the style of the DAWNBench CIFAR-10 entries.

    ``width`` 64 gives 6.57 million parameters. Layer names (``prep``, ``layer1``, ``res1``, ...)
    are those of lesson 08's solution, so its checkpoints load here. Input: normalised
    (N, 3, 32, 32); output: logits (N, num_classes).
    """
    w = width
    layers = [
        ("prep", conv_bn(3, w)),                                           # 32x32
        ("layer1", nn.Sequential(conv_bn(w, 2 * w), nn.MaxPool2d(2))),     # 16x16
        ("res1", Residual(2 * w)),
        ("layer2", nn.Sequential(conv_bn(2 * w, 4 * w), nn.MaxPool2d(2))),  # 8x8
        ("layer3", nn.Sequential(conv_bn(4 * w, 8 * w), nn.MaxPool2d(2))),  # 4x4
        ("res3", Residual(8 * w)),
        ("pool", nn.AdaptiveMaxPool2d(1)),
        ("flatten", nn.Flatten()),
    ]
    if dropout:
        layers.append(("dropout", nn.Dropout(dropout)))
    layers += [("fc", nn.Linear(8 * w, num_classes, bias=False)), ("scale", Scale(0.125))]
    from collections import OrderedDict

    return nn.Sequential(OrderedDict(layers))


class Plain(nn.Module):
    """f(x) alone: the body of a :class:`Residual` block without its skip connection."""

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(channels, channels), conv_bn(channels, channels))

    def forward(self, x):
        return self.body(x)


def deep_network(blocks: int, width: int = 16, residual: bool = True, num_classes: int = 10) -> nn.Sequential:
    """A deep, narrow network for the depth experiment (cheap enough for a CPU): a stem (conv 3x3 at 32x32,
    max pool 4), ``blocks`` blocks at 8x8, global average pool, linear. Each block is two conv-BN-ReLU layers,
    with a skip connection (:class:`Residual`) or without (:class:`Plain`); the two versions have the same
    layers and parameters, so they differ only in the skips. ``2 * blocks + 2`` weight layers."""
    block = Residual if residual else Plain
    return nn.Sequential(conv_bn(3, width), nn.MaxPool2d(4), *[block(width) for _ in range(blocks)],
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(width, num_classes))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------- training helpers

def one_cycle(progress: float, warmup: float) -> float:
    """The learning rate, as a fraction of its peak, at ``progress`` in [0, 1] of training: up linearly from
    5% during ``warmup``, then down linearly to 0."""
    if progress < warmup:
        return 0.05 + 0.95 * progress / warmup
    return max(0.0, (1 - progress) / (1 - warmup))


class TrainingClock:
    """A training-time budget that drives the schedule: on a machine of any speed, training takes the time given.

    The learning rate at each step is :func:`one_cycle` at (training time so far) / budget, and
    :meth:`batches` stops handing out batches once the budget is spent. Only time inside
    ``with clock.running():`` counts, so evaluation between epochs is free::

        clock = TrainingClock(180)
        optimizer, scheduler = make_optimizer(model, settings, steps=0, clock=clock)
        while not clock.spent:
            with clock.running():
                train_one_epoch(model, clock.batches(loader), optimizer, device, scheduler)
    """

    def __init__(self, seconds: float, warmup: float = 0.15):
        self.seconds, self.warmup, self.used, self._since = float(seconds), warmup, 0.0, None

    def progress(self) -> float:
        now = time.perf_counter() - self._since if self._since is not None else 0.0
        return min(1.0, (self.used + now) / self.seconds)

    @property
    def spent(self) -> bool:
        return self.progress() >= 1.0

    @contextlib.contextmanager
    def running(self):
        self._since = time.perf_counter()
        try:
            yield self
        finally:
            self.used += time.perf_counter() - self._since
            self._since = None

    def batches(self, loader):
        """``loader``, cut short when the budget is spent (the same length, for code that asks)."""
        return _UntilSpent(loader, self)

    def scheduler(self, optimizer):
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: one_cycle(self.progress(), self.warmup))


class _UntilSpent:
    def __init__(self, loader, clock: TrainingClock):
        self.loader, self.clock, self.given = loader, clock, 0

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if self.clock.spent:
                return
            self.given += 1
            yield batch


def make_optimizer(model: nn.Module, settings: Settings, steps: int, clock: TrainingClock | None = None):
    """SGD with Nesterov momentum and a one-cycle schedule (warm up for ``settings.warmup`` of the steps, then
    down), over ``steps`` steps, or over the ``clock``'s time budget."""
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD([{"params": decay, "weight_decay": settings.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=settings.lr, momentum=0.9, nesterov=True)
    if clock is not None:
        return opt, clock.scheduler(opt)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=settings.lr, total_steps=max(steps, 1), pct_start=settings.warmup,
                                                anneal_strategy="linear", div_factor=20, final_div_factor=200,
                                                cycle_momentum=False)
    return opt, sched


@torch.no_grad()
def evaluate_with_flips(model: nn.Module, loader, device) -> dict:
    """Test-time augmentation: average the logits of each image and its mirror image."""
    device = torch.device(device)
    model.eval()
    amp = amp_dtype_for(device)
    total, correct, loss_sum = 0, 0, 0.0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            logits = (model(x) + model(x.flip(-1))).float() / 2
        loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
        correct += (logits.argmax(1) == y).sum().item()
        total += len(y)
    return {"loss": loss_sum / total, "accuracy": correct / total}


def synchronize(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def time_training_steps(model: nn.Module, batch_size: int, device, amp_dtype=None, channels_last: bool = False,
                        steps: int = 5, warmup: int = 2) -> float:
    """Seconds per training step (forward, cross-entropy, backward, SGD step) of ``model`` on a random batch
    of ``batch_size`` images 3x32x32 on ``device``, under autocast with ``amp_dtype`` (None: float32); the
    fastest of ``steps`` timed steps after ``warmup`` untimed ones. The model's weights change; pass a copy."""
    device = torch.device(device)
    fmt = torch.channels_last if channels_last else torch.preserve_format
    model = model.to(device, memory_format=fmt).train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch_size, 3, 32, 32, generator=g).to(device).contiguous(memory_format=fmt)
    y = torch.randint(0, 10, (batch_size,), generator=g).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    times = []
    for k in range(warmup + steps):
        with Timer(device) as t:
            with torch.autocast(device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                logits = model(x)
            loss = F.cross_entropy(logits.float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        if k >= warmup:
            times.append(t.seconds)
    return min(times)


class Timer:
    """``with Timer() as t: ...; t.seconds`` (waits for the GPU to finish)."""

    def __init__(self, device="cpu"):
        self.device = device

    def __enter__(self):
        synchronize(self.device)
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc):
        synchronize(self.device)
        self.seconds = time.perf_counter() - self.start
        return False


def plot_history(history: dict, title: str = "", axes=None):
    """Loss and accuracy per epoch, train against validation (and/or test). ``history``: lists under
    train_loss, train_accuracy, val_loss, val_accuracy (or test_loss, test_accuracy), ..."""
    import matplotlib.pyplot as plt

    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    epochs = range(1, len(history["train_loss"]) + 1)
    for key, style, name in (("train", "-o", "train"), ("val", "--s", "validation"), ("test", ":^", "test")):
        if f"{key}_loss" not in history:
            continue
        axes[0].plot(epochs, history[f"{key}_loss"], style, label=name, markersize=3)
        axes[1].plot(epochs, history[f"{key}_accuracy"], style, label=name, markersize=3)
    axes[0].set(xlabel="epoch", ylabel="loss", title=f"{title} loss".strip())
    axes[1].set(xlabel="epoch", ylabel="accuracy", title=f"{title} accuracy".strip())
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    return axes


# --------------------------------------------------------------------------- checkpoints

def save_checkpoint(model: nn.Module, path, info: dict) -> bool:
    """Save ``model``'s state dict at ``path`` and ``info`` beside it (``.json``), unless a better one is there.

    A checkpoint whose recorded ``val_accuracy`` (validation accuracy; ``test_accuracy`` when
    ``info`` has none) is higher is kept (returns False), so that a quick re-run never
    overwrites a full training run. Checkpoints are compared on validation data, never on the
    test set, which must not choose anything.
    """
    path = pathlib.Path(path)
    meta = path.with_suffix(".json")
    key = "val_accuracy" if "val_accuracy" in info else "test_accuracy"
    if path.is_file() and meta.is_file():
        with contextlib.suppress(ValueError, OSError, TypeError):
            old = json.loads(meta.read_text())
            if float(old.get(key, 0)) > float(info.get(key, 0)):
                return False
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save(state, path)
    meta.write_text(json.dumps(info, indent=1, default=str) + "\n")
    return True


def grade_checkpoint(build_model: Callable[[], nn.Module], path=CHECKPOINT, root=None) -> float:
    """Accuracy of the submitted checkpoint ``path`` (a state dict for ``build_model()``) on the
    CIFAR-10 test set, for the grader; DataNotAvailable without the test set, CheckFailed (with
    the reason) when the file is missing or does not load.

    The learner's code (``build_model`` and the model's forward) runs while no label is in
    memory: the model is built, predicts every test image, and only then are the labels
    read, so a model cannot look the answers up in the notebook or in this function's frame.
    When the grader verifies a notebook, the model and the checkpoint stay in the student's
    process (:func:`model_checks.predictions` runs there), which never sees a label.
    """
    from . import model_checks

    root = pathlib.Path(root) if root is not None else default_root()
    if layout(root) in (None, "fake"):
        raise DataNotAvailable(f"CIFAR-10 test set not available to the grader (set {ENV_DATA} to a folder "
                               "with cifar-10-batches-py/ or test/<class>/): checkpoint not evaluated")
    model = model_checks.call_on(build_model)
    images = load_split(root, train=False, download=False)[0]  # the labels are dropped here, unseen
    predictions = model_checks.predictions(model, images, MEAN, STD, checkpoint=str(path))
    del model, images
    labels = load_split(root, train=False, download=False)[1]
    return float((predictions == labels).double().mean())


class LivePlot:
    """Train/test curves redrawn after every epoch (in Jupyter: in place; elsewhere: once, at the end)."""

    def __init__(self, title: str = ""):
        import matplotlib.pyplot as plt

        self.title = title
        self.fig, self.axes = plt.subplots(1, 2, figsize=(9, 3.2))
        self.handle = None

    def update(self, history: dict) -> None:
        for ax in self.axes:
            ax.clear()
        plot_history(history, self.title, axes=self.axes)
        self.fig.tight_layout()
        try:
            from IPython import get_ipython
            from IPython.display import display
        except ImportError:
            return
        if get_ipython() is None:
            return
        if self.handle is None:
            self.handle = display(self.fig, display_id=True)
        else:
            self.handle.update(self.fig)

    def close(self) -> None:
        import matplotlib.pyplot as plt

        plt.close(self.fig)


# --------------------------------------------------------------------------- lesson 09: a trained model

ENV_CHECKPOINT = "CNN_COURSE_CHECKPOINT"


def checkpoint_candidates() -> list[pathlib.Path]:
    """Where lesson 09 looks for lesson 08's checkpoint, in order (see :mod:`cnn_course.chain`)."""
    from . import chain

    return [path for path, _ in chain.candidates()]


def quick_train(model: nn.Module, data: Data, device, epochs: int = 2, batch_size: int = 100, lr: float = 0.2,
                seed: int = 0) -> nn.Module:
    """A short training run (random flips, SGD with a one-cycle schedule, label smoothing 0.1)."""
    torch.manual_seed(seed)
    device = torch.device(device)
    model.to(device)
    loader = DeviceLoader(data.train_images, data.train_labels, batch_size, device, shuffle=True, drop_last=True,
                          seed=seed, augment=lambda x, generator=None: torch.where(
                              torch.rand(len(x), 1, 1, 1, device=x.device, generator=generator) < 0.5, x.flip(-1), x))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(1, epochs * len(loader)),
                                                pct_start=0.25, anneal_strategy="linear", cycle_momentum=False)
    model.train()
    for _ in range(epochs):
        for x, y in loader:
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return model.eval()


def trained_model(settings: Settings, data: Data, use_drive: bool = False) -> tuple[nn.Module, str]:
    """Lesson 08's trained network, found by :func:`chain.find_checkpoint` (``use_drive``: mount Google
    Drive on Colab), else a small stand-in trained here and now. Returns (model in eval mode, a
    sentence saying which, and where it came from)."""
    from . import chain

    found = chain.find_checkpoint(mount_drive=use_drive)
    if found.path is not None:
        model = chain.load_checkpoint(found.path)
        return model.to(settings.device).eval(), f"loaded your lesson 08 model from {found.path} ({found.where})"
    width, epochs, batch = (16, 2, 100) if data.real else (8, 3, 50)
    start = time.perf_counter()
    model = quick_train(reference_model(width=width), data, settings.device, epochs=epochs, batch_size=batch)
    problems = "".join(f"{p}. " for p in found.problems)
    usable = "usable" if found.problems else "trained"
    return model, (f"{problems}no {usable} lesson 08 model found: using the small STAND-IN model (width {width}, "
                   f"trained just now for {epochs} epochs in {time.perf_counter() - start:.0f} s on "
                   f"{'CIFAR-10' if data.real else 'FAKE data'}); expect much blurrier maps than your fully "
                   f"trained network gives. {chain.how_to_bring_it('above')}")
