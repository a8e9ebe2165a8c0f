"""Lesson 08: the tests accept every correct implementation and reject plausible wrong ones.

Each mutant is a mistake learners make; each must fail its function's hidden tests.
Each alternative is a different correct way to write the function; it must pass every
test cell of the lesson. The checkpoint cell (test_cifar10_checkpoint) needs the CIFAR-10
test set: without it, it must fail with a plain message; with a test set whose labels a
known network predicts, it must pass that network's checkpoint and fail others.
"""

import numpy as np
import pytest
import torch

from cnn_course import cifar
from tests.notebook_runner import run_tests, solution_cells

LESSON = "08_cifar10_on_gpu"
NEEDS_DATA = "test_cifar10_checkpoint"


ALTERNATIVES = {
    "index arithmetic with a validity mask; VGG-style net; per-batch .item() loops": {
        "random_flip_translate": '''
import torch
def random_flip_translate(images, max_shift=2, generator=None):
    n, c, h, w = images.shape
    dev = images.device
    flip = torch.randint(0, 2, (n,), generator=generator, device=dev).bool()
    shifts = torch.randint(-max_shift, max_shift + 1, (2, n), generator=generator, device=dev)
    src_r = torch.arange(h, device=dev)[None, :] - shifts[0][:, None]
    src_c = torch.arange(w, device=dev)[None, :] - shifts[1][:, None]
    ok_r = (src_r >= 0) & (src_r < h)
    ok_c = (src_c >= 0) & (src_c < w)
    src_c = torch.where(flip[:, None], w - 1 - src_c, src_c)
    out = images[torch.arange(n, device=dev)[:, None, None, None], torch.arange(c, device=dev)[None, :, None, None],
                 src_r.clamp(0, h - 1)[:, None, :, None], src_c.clamp(0, w - 1)[:, None, None, :]]
    mask = ok_r[:, None, :, None] & ok_c[:, None, None, :]
    return torch.where(mask, out, torch.zeros((), dtype=images.dtype, device=dev))
''',
        "build_model": '''
import torch.nn as nn
def build_model(num_classes=10):
    def block(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU()]
    return nn.Sequential(*block(3, 64), *block(64, 64), nn.MaxPool2d(2), *block(64, 128), *block(128, 128),
                         nn.MaxPool2d(2), *block(128, 256), *block(256, 256), nn.MaxPool2d(2),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(256, num_classes))
''',
        "train_one_epoch": '''
import torch
import torch.nn.functional as F
def train_one_epoch(model, loader, optimizer, device, scheduler=None):
    model.train()
    loss_total, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss = F.cross_entropy(out, y, reduction="sum") / len(y)
        model.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler:
            scheduler.step()
        loss_total += loss.item() * len(y)
        correct += (out.argmax(dim=1) == y).sum().item()
        count += len(y)
    return {"loss": loss_total / count, "accuracy": correct / count}
''',
        "evaluate": '''
import torch
import torch.nn.functional as F
@torch.inference_mode()
def evaluate(model, loader, device):
    model.eval()
    loss_total, correct, count = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        out = model(x)
        loss_total += F.cross_entropy(out, y, reduction="sum").item()
        correct += int((out.argmax(1) == y).sum())
        count += y.numel()
    return {"loss": loss_total / count, "accuracy": correct / count}
''',
        "train_val_split": '''
import numpy as np
import torch
def train_val_split(labels, val_fraction=0.1, seed=0):
    if not (0 < val_fraction < 1):
        raise ValueError("val_fraction=%r is not in (0, 1)" % (val_fraction,))
    y = np.asarray(labels)
    rng = np.random.default_rng(seed)
    is_val = np.zeros(len(y), dtype=bool)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        is_val[rng.choice(members, size=round(val_fraction * len(members)), replace=False)] = True
    return torch.from_numpy(np.flatnonzero(~is_val)).long(), torch.from_numpy(np.flatnonzero(is_val)).long()
''',
        "dropout": '''
import torch
def dropout(x, p=0.5, training=True, generator=None):
    if p < 0 or p >= 1:
        raise ValueError(f"p = {p}: expected 0 <= p < 1")
    if training and p > 0:
        mask = torch.bernoulli(torch.full_like(x, 1 - p), generator=generator)
        return x * mask * (1.0 / (1 - p))
    return x
''',
    },
    "a loop over the possible shifts (not over images); small ResNet; logits gathered at the end": {
        "random_flip_translate": '''
import torch
def random_flip_translate(images, max_shift=2, generator=None):
    n, c, h, w = images.shape
    coin = torch.rand(n, generator=generator, device=images.device) < 0.5
    dy = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator, device=images.device)
    dx = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator, device=images.device)
    x = images.clone()
    x[coin] = images[coin].flip(3)
    out = torch.zeros_like(images)
    for a in range(-max_shift, max_shift + 1):
        for b in range(-max_shift, max_shift + 1):
            sel = ((dy == a) & (dx == b)).view(n, 1, 1, 1)
            shifted = torch.zeros_like(x)
            shifted[:, :, max(a, 0):h + min(a, 0), max(b, 0):w + min(b, 0)] = \\
                x[:, :, max(-a, 0):h + min(-a, 0), max(-b, 0):w + min(-b, 0)]
            out = torch.where(sel, shifted, out)
    return out
''',
        "build_model": '''
import torch
import torch.nn as nn
class _Block(nn.Module):
    def __init__(self, i, o, stride):
        super().__init__()
        self.c1 = nn.Conv2d(i, o, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(o)
        self.c2 = nn.Conv2d(o, o, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(o)
        self.skip = nn.Sequential() if stride == 1 and i == o else nn.Sequential(
            nn.Conv2d(i, o, 1, stride, bias=False), nn.BatchNorm2d(o))
    def forward(self, x):
        y = torch.relu(self.b1(self.c1(x)))
        return torch.relu(self.b2(self.c2(y)) + self.skip(x))
class _Net(nn.Module):
    def __init__(self, k):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU())
        self.blocks = nn.Sequential(_Block(32, 32, 1), _Block(32, 64, 2), _Block(64, 128, 2), _Block(128, 256, 2))
        self.head = nn.Linear(256, k)
    def forward(self, x):
        return self.head(self.blocks(self.stem(x)).mean(dim=(2, 3)))
def build_model(num_classes=10):
    return _Net(num_classes)
''',
        "train_one_epoch": '''
import torch
import torch.nn.functional as F
def train_one_epoch(model, loader, optimizer, device, scheduler=None):
    device = torch.device(device)
    model.train()
    sums = torch.zeros(3, dtype=torch.float64)
    for images, labels in loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        sums += torch.tensor([loss.item() * labels.shape[0], (logits.argmax(-1) == labels).sum().item(),
                              labels.shape[0]], dtype=torch.float64)
    return {"loss": float(sums[0] / sums[2]), "accuracy": float(sums[1] / sums[2])}
''',
        "evaluate": '''
import torch
import torch.nn.functional as F
def evaluate(model, loader, device):
    model.eval()
    logits, labels = [], []
    with torch.no_grad():
        for x, y in loader:
            logits.append(model(x.to(device)))
            labels.append(y.to(device))
    logits, labels = torch.cat(logits), torch.cat(labels)
    return {"loss": F.cross_entropy(logits, labels).item(), "accuracy": (logits.argmax(1) == labels).float().mean().item()}
''',
        "train_val_split": '''
import torch
def train_val_split(labels, val_fraction=0.1, seed=0):
    if val_fraction <= 0 or val_fraction >= 1:
        raise ValueError(f"bad val_fraction {val_fraction}")
    labels = torch.as_tensor(labels).long()
    g = torch.Generator().manual_seed(seed)
    keys = torch.rand(len(labels), generator=g, dtype=torch.float64)
    order = torch.argsort(keys)
    order = order[torch.argsort(labels[order], stable=True)]   # grouped by class, random within a class
    val = []
    start = 0
    for c, n in zip(*torch.unique(labels, return_counts=True)):
        n = int(n)
        val.append(order[start:start + round(val_fraction * n)])
        start += n
    val = torch.sort(torch.cat(val)).values
    mask = torch.ones(len(labels), dtype=torch.bool)
    mask[val] = False
    return torch.arange(len(labels))[mask], val
''',
        "dropout": '''
import torch
def dropout(x, p=0.5, training=True, generator=None):
    if not (0 <= p < 1):
        raise ValueError("dropout needs 0 <= p < 1, got p=" + str(p))
    if not training or p == 0:
        return x
    u = torch.empty(x.shape, device=x.device).uniform_(0, 1, generator=generator)
    return torch.where(u < p, torch.zeros((), dtype=x.dtype, device=x.device), x / (1 - p))
''',
    },
}

_TRAIN = '''
import torch
import torch.nn.functional as F
def train_one_epoch(model, loader, optimizer, device, scheduler=None):
    {setup}
    loss_sum, correct, total = 0.0, 0, 0
    for images, labels in loader:
        logits = model(images)
        loss = F.cross_entropy(logits, labels)
        {zero}
        loss.backward()
        optimizer.step()
        {sched_inner}
        {record}
        correct += (logits.argmax(1) == labels).sum().item()
        total += len(labels)
    {sched_outer}
    return {{"loss": {loss_out}, "accuracy": {acc_out}}}
'''


def _train(setup="model.train()", zero="optimizer.zero_grad()", sched_inner="if scheduler is not None: scheduler.step()",
           sched_outer="", record="loss_sum += loss.item() * len(labels)", loss_out="loss_sum / total",
           acc_out="correct / total"):
    return _TRAIN.format(setup=setup, zero=zero, sched_inner=sched_inner, sched_outer=sched_outer, record=record,
                         loss_out=loss_out, acc_out=acc_out)


_EVAL = '''
import contextlib
import torch
import torch.nn.functional as F
def evaluate(model, loader, device):
    {mode}
    loss_sum, correct, total, n_batches = 0.0, 0, 0, 0
    with {ctx}:
        for x, y in loader:
            out = model(x)
            loss_sum += {loss}
            correct += int((out.argmax(1) == y).sum())
            total += len(y)
            n_batches += 1
    return {{"loss": {loss_out}, "accuracy": {acc_out}}}
'''


def _eval(mode="model.eval()", ctx="torch.no_grad()", loss='F.cross_entropy(out, y, reduction="sum").item()',
          loss_out="loss_sum / total", acc_out="correct / total"):
    return _EVAL.format(mode=mode, ctx=ctx, loss=loss, loss_out=loss_out, acc_out=acc_out)


_FLIP = '''
import torch
import torch.nn.functional as F
def random_flip_translate(images, max_shift=2, generator=None):
    n, c, h, w = images.shape
    dev = images.device
    flip = {flip}
    dy = {dy}
    dx = {dx}
    x = torch.where(flip.view(-1, 1, 1, 1), images.flip({axis}), images)
    s = max_shift
    padded = F.pad(x.double(), (s, s, s, s){pad}).to(x.dtype)
    rows = (torch.arange(h, device=dev).view(1, h) + s - dy.view(-1, 1)).view(-1, 1, h, 1).expand(n, 1, h, 1)
    cols = (torch.arange(w, device=dev).view(1, w) + s - dx.view(-1, 1)).view(-1, 1, 1, w).expand(n, 1, 1, w)
    return padded[torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1), rows, cols]
'''


def _flip(flip="torch.rand(n, generator=generator, device=dev) < 0.5",
          dy="torch.randint(-max_shift, max_shift + 1, (n,), generator=generator, device=dev)",
          dx="torch.randint(-max_shift, max_shift + 1, (n,), generator=generator, device=dev)", axis="-1", pad=""):
    return _FLIP.format(flip=flip, dy=dy, dx=dx, axis=axis, pad=pad)


_RESNET = '''
import torch.nn as nn
def build_model(num_classes=10):
    def cbr(i, o):
        return [nn.Conv2d(i, o, 3, padding=1), {norm}, nn.ReLU()]
    w = {width}
    return nn.Sequential(*cbr(3, w), *cbr(w, 2 * w), nn.MaxPool2d(2), *cbr(2 * w, 4 * w), nn.MaxPool2d(2),
                         *cbr(4 * w, 8 * w), nn.MaxPool2d(2), *cbr(8 * w, 8 * w), nn.AdaptiveMaxPool2d(1),
                         {tail})
'''


def _resnet(norm="nn.BatchNorm2d(o)", width=64, tail="nn.Flatten(), nn.Linear(8 * w, num_classes)"):
    return _RESNET.format(norm=norm, width=width, tail=tail)


_SPLIT = '''
import torch
def train_val_split(labels, val_fraction=0.1, seed=0):
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {{val_fraction}}")
    labels = torch.as_tensor(labels)
    g = torch.Generator().manual_seed(seed)
    chosen = [torch.zeros(0, dtype=torch.int64)]
    for c in torch.unique(labels).tolist():
        members = torch.nonzero(labels == c).flatten()
        k = {count}
        chosen.append(members[{pick}][:k])
    val = {val}
    is_val = torch.zeros(len(labels), dtype=torch.bool)
    is_val[val] = True
    train = {train}
    return train, val
'''


def _split(count="round(val_fraction * len(members))", pick="torch.randperm(len(members), generator=g)",
           val="torch.cat(chosen).sort().values", train="torch.nonzero(~is_val).flatten()"):
    return _SPLIT.format(count=count, pick=pick, val=val, train=train)


_DROP = '''
import torch
def dropout(x, p=0.5, training=True, generator=None):
    if not 0 <= p < 1:
        raise ValueError(f"p must be in [0, 1), got {{p}}")
    if {off}:
        return x
    keep = {keep}
    return {out}
'''


def _drop(off="not training or p == 0", keep="torch.rand(x.shape, generator=generator, device=x.device) >= p",
          out="x * keep / (1 - p)"):
    return _DROP.format(off=off, keep=keep, out=out)


MUTANTS = {
    "random_flip_translate": {
        "one flip for the whole batch": _flip(flip="(torch.rand(1, generator=generator, device=dev) < 0.5).expand(n)"),
        "one shared shift for the batch": _flip(
            dy="torch.randint(-max_shift, max_shift + 1, (1,), generator=generator, device=dev).expand(n)",
            dx="torch.randint(-max_shift, max_shift + 1, (1,), generator=generator, device=dev).expand(n)"),
        "torch.roll (wrap-around instead of zeros)": '''
import torch
def random_flip_translate(images, max_shift=2, generator=None):
    n = images.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images)
    dy = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator)
    dx = torch.randint(-max_shift, max_shift + 1, (n,), generator=generator)
    return torch.stack([torch.roll(x[i], (int(dy[i]), int(dx[i])), dims=(1, 2)) for i in range(n)])
''',
        "shifts in [-s, s - 1] (randint's upper bound is exclusive)": _flip(
            dy="torch.randint(-max_shift, max_shift, (n,), generator=generator, device=dev)",
            dx="torch.randint(-max_shift, max_shift, (n,), generator=generator, device=dev)"),
        "vertical flip": _flip(axis="-2"),
        "reflection padding instead of zeros": _flip(pad=', mode="replicate"'),
        "same draw for dy and dx": _flip(dx="dy"),
        "a Python loop over images": '''
import torch
def random_flip_translate(images, max_shift=2, generator=None):
    out = torch.zeros_like(images)
    h, w = images.shape[-2:]
    for i in range(images.shape[0]):
        x = images[i].flip(-1) if torch.rand(1, generator=generator).item() < 0.5 else images[i]
        a, b = torch.randint(-max_shift, max_shift + 1, (2,), generator=generator).tolist()
        out[i, :, max(a, 0):h + min(a, 0), max(b, 0):w + min(b, 0)] = \\
            x[:, max(-a, 0):h + min(-a, 0), max(-b, 0):w + min(-b, 0)]
    return out
''',
        "ignores the generator": _flip(flip="torch.rand(n, device=dev) < 0.5",
                                       dy="torch.randint(-max_shift, max_shift + 1, (n,), device=dev)",
                                       dx="torch.randint(-max_shift, max_shift + 1, (n,), device=dev)"),
    },
    "train_val_split": {
        "not stratified (a random 10% of the whole set)": '''
import torch
def train_val_split(labels, val_fraction=0.1, seed=0):
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(labels)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = round(val_fraction * n)
    return order[k:].sort().values, order[:k].sort().values
''',
        "leaks: train_idx is every index (overlaps val_idx)": _split(train="torch.arange(len(labels))"),
        "val_idx unsorted": _split(val="torch.cat(chosen)"),
        "floor instead of round": _split(count="int(val_fraction * len(members))"),
        "ceil instead of round": _split(count="-int(-(val_fraction * len(members)) // 1)"),
        "the first examples of each class (not random)": _split(pick="torch.arange(len(members))"),
        "ignores the seed (global random state)": _split(pick="torch.randperm(len(members))"),
        "int32 indices": _split(val="torch.cat(chosen).sort().values.int()", train="torch.nonzero(~is_val).flatten().int()"),
    },
    "dropout": {
        "no rescaling of the survivors": _drop(out="x * keep"),
        "survivors scaled by p": _drop(out="x * keep * p"),
        "survivors scaled by 1 / p": _drop(out="x * keep / p"),
        "zeroes with probability 1 - p": _drop(keep="torch.rand(x.shape, generator=generator, device=x.device) < p"),
        "active in eval mode": _drop(off="p == 0"),
        "one mask shared by every row of the batch": _drop(
            keep="torch.rand(x.shape[1:], generator=generator, device=x.device) >= p"),
        "a fixed number of elements dropped": _drop(
            keep="(torch.randperm(x.numel(), generator=generator, device=x.device) >= round(p * x.numel())).view(x.shape)"),
        "no gradient (works on x.detach())": _drop(out="x.detach() * keep / (1 - p)"),
        "modifies x in place": _drop(out="x.mul_(keep).div_(1 - p)"),
        "ignores the generator": _drop(keep="torch.rand(x.shape, device=x.device) >= p"),
    },
    "build_model": {
        "no batch norm": _resnet(norm="nn.Identity()"),
        "too many parameters (twice the width: 26 million)": _resnet(width=128),
        "ignores num_classes": _resnet(tail="nn.Flatten(), nn.Linear(8 * w, 10)"),
        "logits not flattened (N, K, 1, 1)": _resnet(tail="nn.Conv2d(8 * w, num_classes, 1)"),
    },
    "train_one_epoch": {
        "mean of the batch means (wrong with unequal batches)": _train(
            record="loss_sum += loss.item()",
            loss_out="loss_sum / len(loader)"),
        "scheduler stepped once per epoch": _train(sched_inner="", sched_outer="if scheduler is not None: scheduler.step()"),
        "gradients never zeroed": _train(zero=""),
        "eval mode while training": _train(setup="model.eval()"),
        "accuracy as a count": _train(acc_out="correct"),
        "no training mode set (stays in eval mode if it was)": _train(setup="pass"),
        "loss recomputed after the step": _train(
            record="loss_sum += torch.nn.functional.cross_entropy(model(images), labels).item() * len(labels)"),
    },
    "evaluate": {
        "train mode (batch norm statistics change)": _eval(mode="model.train()"),
        "gradients enabled": _eval(ctx="contextlib.nullcontext()"),
        "mean of the batch means": _eval(loss="F.cross_entropy(out, y).item()", loss_out="loss_sum / n_batches"),
        "accuracy in percent": _eval(acc_out="100 * correct / total"),
        "no mode set (dropout on if the model was training)": _eval(mode="pass"),
    },
}





def test_failure_messages_teach():
    roll = MUTANTS["random_flip_translate"]["torch.roll (wrap-around instead of zeros)"]
    results = run_tests(LESSON, {"random_flip_translate": roll})
    assert "torch.roll" in results["test_random_flip_translate"]
    results = run_tests(LESSON, {"train_one_epoch": MUTANTS["train_one_epoch"]["scheduler stepped once per epoch"]})
    assert "scheduler.step()" in results["test_train_one_epoch"]
    results = run_tests(LESSON, {"evaluate": MUTANTS["evaluate"]["gradients enabled"]})
    assert "torch.no_grad()" in results["test_evaluate_hidden"]


# A learner without hidden tests (Colab, Binder) learns only from the visible ones: the most common
# mistakes in the two new functions (those issue 14 names) fail there, with a message that says why.
# One mistake in each function per run: each function's tests call only it.
VISIBLE_CATCHES = [
    (("no rescaling of the survivors", "1 / (1 - p)"), ("not stratified (a random 10% of the whole set)", "stratified")),
    (("survivors scaled by p", "not by p"), ("leaks: train_idx is every index (overlaps val_idx)", "leak")),
    (("zeroes with probability 1 - p", "probability of DROPPING"), ("val_idx unsorted", "sorted")),
    (("active in eval mode", "eval mode"), ("floor instead of round", "round")),
]


@pytest.mark.parametrize("dropout_case,split_case", VISIBLE_CATCHES)
def test_visible_tests_catch_the_common_mistakes(dropout_case, split_case):
    results = run_tests(LESSON, {"dropout": MUTANTS["dropout"][dropout_case[0]],
                                 "train_val_split": MUTANTS["train_val_split"][split_case[0]]})
    for function, (label, words) in (("dropout", dropout_case), ("train_val_split", split_case)):
        message = results[f"test_{function}"]
        assert message is not None and words in message, (label, message)


# Issue 14 item 9: every mutant above fails a visible test too; these say why (one mistake per function and run).
VISIBLE_CATCHES_MORE = [
    {"random_flip_translate": ("one flip for the whole batch", "one coin per image"),
     "dropout": ("a fixed number of elements dropped", "do not drop a fixed number"),
     "build_model": ("ignores num_classes", "num_classes outputs"),
     "train_one_epoch": ("mean of the batch means (wrong with unequal batches)", "mean of the 2 batch losses"),
     "evaluate": ("gradients enabled", "torch.no_grad()")},
    {"random_flip_translate": ("one shared shift for the batch", "a shift per image"),
     "train_one_epoch": ("gradients never zeroed", "optimizer.zero_grad()"),
     "evaluate": ("mean of the batch means", "mean of the 2 batch losses")},
    {"random_flip_translate": ("same draw for dy and dx", "draw dy and dx separately"),
     "train_one_epoch": ("no training mode set (stays in eval mode if it was)", "model.train()")},
    {"random_flip_translate": ("a Python loop over images", "Python loop over the images"),
     "train_one_epoch": ("loss recomputed after the step", "after each optimizer step")},
]


@pytest.mark.parametrize("cases", VISIBLE_CATCHES_MORE)
def test_visible_tests_say_why(cases):
    results = run_tests(LESSON, {f: MUTANTS[f][label] for f, (label, _) in cases.items()})
    for function, (label, words) in cases.items():
        message = results[f"test_{function}"]
        assert message is not None and words in message, (label, message)


# --------------------------------------------------------------------------- the checkpoint cell

def test_checkpoint_cell_says_plainly_when_the_test_set_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv(cifar.ENV_DATA, str(tmp_path / "nothing-here"))
    monkeypatch.chdir(tmp_path)
    message = run_tests(LESSON)[NEEDS_DATA]
    assert message is not None and "CIFAR-10 test set not available to the grader" in message
    assert "checkpoint not evaluated" in message


def _labelled_test_set(tmp_path, model, n=120):
    """An ImageFolder 'test set' whose labels are what ``model`` predicts: its checkpoint scores 100%."""
    rng = np.random.default_rng(8)
    images = rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous()
    with torch.no_grad():
        labels = model.eval()(cifar.normalize(x)).argmax(1).numpy()
    root = tmp_path / "grader-data"
    cifar.write_image_folder(root, "test", images, labels, fmt="png")
    return root


@pytest.fixture
def graded_workspace(monkeypatch, tmp_path):
    torch.manual_seed(0)
    model = cifar.reference_model()
    root = _labelled_test_set(tmp_path, model)
    work = tmp_path / "submission"
    work.mkdir()
    monkeypatch.setenv(cifar.ENV_DATA, str(root))
    monkeypatch.chdir(work)
    return model, work


def test_checkpoint_cell_passes_a_good_checkpoint(graded_workspace):
    model, work = graded_workspace
    torch.save(model.state_dict(), work / cifar.CHECKPOINT)
    assert run_tests(LESSON)[NEEDS_DATA] is None


def test_checkpoint_cell_fails_a_bad_or_missing_checkpoint(graded_workspace):
    model, work = graded_workspace
    assert "no cifar10_model.pt" in run_tests(LESSON)[NEEDS_DATA]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.weight"] = -state["fc.weight"]  # now it predicts the least likely class
    torch.save(state, work / cifar.CHECKPOINT)
    assert "90% is needed" in run_tests(LESSON)[NEEDS_DATA]
    torch.save({"not": torch.zeros(1)}, work / cifar.CHECKPOINT)
    assert "does not load into build_model()" in run_tests(LESSON)[NEEDS_DATA]


def test_a_model_cannot_look_the_answers_up(monkeypatch, tmp_path):
    """A 'model' that searches memory (the notebook's globals, the grader's frames) for the labels and
    returns them as logits. The test set's labels are what the honest model does NOT predict, so the
    checkpoint passes only if the lookup finds them while it runs."""
    torch.manual_seed(0)
    model = cifar.reference_model()
    rng = np.random.default_rng(8)
    images = rng.integers(0, 256, (120, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        predicted = model.eval()(cifar.normalize(torch.from_numpy(images).permute(0, 3, 1, 2))).argmax(1).numpy()
    root = cifar.write_image_folder(tmp_path / "grader-data", "test", images, (predicted + 1) % 10)
    work = tmp_path / "submission"
    work.mkdir()
    monkeypatch.setenv(cifar.ENV_DATA, str(root))
    monkeypatch.chdir(work)
    torch.save({f"inner.{k}": v for k, v in model.state_dict().items()}, work / cifar.CHECKPOINT)
    lookup = solution_cells(LESSON)["build_model"].replace("def build_model(", "def _honest_build_model(") + '''

class _Oracle(nn.Module):
    def __init__(self, inner):
        super().__init__()
        self.inner, self.offset = inner, 0

    def forward(self, x):
        import sys
        frames, frame = [], sys._getframe()
        while frame is not None:
            frames.append(frame)
            frame = frame.f_back
        found = None
        for value in [v for f in frames for v in f.f_locals.values()] + [v for f in frames for v in f.f_globals.values()]:
            if (found is None and isinstance(value, torch.Tensor) and value.dtype == torch.int64 and value.ndim == 1
                    and len(value) >= 120 and 0 <= int(value.min()) and int(value.max()) < 10):
                found = value
        if found is None:
            return self.inner(x)
        labels = found[self.offset:self.offset + len(x)]
        self.offset += len(x)
        return F.one_hot(labels, 10).float()


def build_model(num_classes=10):
    return _Oracle(_honest_build_model(num_classes))
'''
    message = run_tests(LESSON, {"build_model": lookup})[NEEDS_DATA]
    assert message is not None and "90% is needed" in message, message


def test_reference_architecture_loads_the_solution_checkpoint():
    """Lesson 09 rebuilds lesson 08's network from cnn_course.cifar: the state dicts must match."""

    namespace = {}
    exec("import torch\nimport torch.nn as nn\n" + solution_cells(LESSON)["build_model"], namespace)
    for width in (64, 8):
        theirs = namespace["build_model"](width=width)
        cifar.reference_model(width=width).load_state_dict(theirs.state_dict())
