"""CIFAR-10 on a CPU: the best accuracy in a fixed training time; on a GPU: the lesson-08 recipe's time to 94%.

    python benchmarks/cifar10_cpu.py                      # CPU: 10 minutes of training on 2 threads
    python benchmarks/cifar10_cpu.py --beside-lesson      # ... then lesson 08's ResNet-9 recipe for the same time
    python benchmarks/cifar10_cpu.py --minutes 0.5        # a short development run
    python benchmarks/cifar10_cpu.py --gpu                # GPU: time to 94%, 3 seeds, beside the PyTorch tutorial

Data (first match): --data PATH; $CNN_COURSE_CIFAR10; data/cifar10-jpg/; the JPEG zips in ../shared/data/,
/work/shared/data/ or data/, unzipped once into data/cifar10-jpg/ (git-ignored); data/cifar10 (torchvision's
copy). Nothing is downloaded.
The JPEG copy is close to, not identical with, the official pixels: compare methods on the same copy.

The CPU recipe follows airbench (Keller Jordan's CIFAR-10 speedruns: airbench94_muon), at a width a 2-core CPU
can afford: a fixed 2x2 whitening convolution computed from the training images' patches, three
conv-pool-BN-GELU groups (widths 32, 96, 96) with identity-initialised convolutions and batch norm without
scale; Muon for the filters (each layer's update orthogonalised) and SGD for biases and the linear layer, the
learning rate straight down from its peak; label smoothing; alternating flips (each image is mirrored every other
epoch rather than at random) and 2-pixel reflect-padded shifts; test-time flips. --optimizer sgd gives airbench94's
SGD recipe instead (triangular schedule, lookahead). Lesson 08's recipe (ResNet-9, one-cycle,
cnn_course.cifar.reference_model) runs beside it with --beside-lesson and is the GPU mode's network.

Measured on a 2-core AMD EPYC (AVX2, torch 2.13 CPU), JPEG copy, seed 0, `python benchmarks/cifar10_cpu.py
--beside-lesson`: this recipe 86.95% with flips after 10 minutes (6.3 epochs, 527 images/s); lesson 08's recipe
85.45% (5.8 epochs, 479 images/s). airbench94's own width (64, 256, 256) runs at 135 images/s here.

On the CPU the schedule follows the clock, not a step count: the learning rate at each step is the schedule
evaluated at (training time so far) / (time budget), and training stops when the budget is spent, so the run uses
exactly the time it is given whatever the machine's speed. Evaluation is not counted. Batch preparation is.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time
import zipfile

import torch
import torch.nn.functional as F
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cnn_course import cifar  # noqa: E402

# ----------------------------------------------------------------------------- hyperparameters
CPU = dict(
    minutes=10.0,          # training time budget (evaluation excluded)
    threads=2,
    widths=(32, 96, 96),   # the three conv groups; airbench94 uses (64, 256, 256): 135, not ~530 images/s here
    batch_size=1000,
    optimizer="muon",      # Muon for the convolutions' filters, SGD for the rest; "sgd": airbench94's SGD + lookahead
    muon_lr=0.24,          # Muon: size of each (orthogonalised) filter update; weights are kept at a fixed norm
    muon_momentum=0.6,
    bias_lr=0.053,         # SGD, per image (the loss is summed over the batch): batch-norm and whitening biases
    head_lr=0.67,          # SGD, per image: the linear layer
    weight_decay=2e-6,     # per image, on the SGD parameters
    label_smoothing=0.2,
    max_shift=2,           # random translation, pixels, reflect padding
    whiten_bias_until=0.375,  # the whitening layer's bias trains for this fraction of the budget, then freezes
)
SGD_CPU = dict(            # optimizer="sgd": airbench94's, per 1,024 images with momentum folded out
    batch_size=256, lr=11.5, momentum=0.85, weight_decay=0.0153, bias_scaler=64.0, lookahead=True,
    whiten_bias_until=0.3,
)
LESSON_CPU = dict(         # lesson 08's recipe on the CPU (ResNet-9, one-cycle), for --beside-lesson
    width=16,              # 0.41 M parameters (64 is the full network)
    batch_size=128,
    lr=0.4,                # peak of the one-cycle schedule (SGD, Nesterov momentum 0.9)
    warmup=0.15,           # fraction of the budget spent warming up
    weight_decay=5e-4,     # on weights, not on batch-norm parameters
    label_smoothing=0.2,
    max_shift=2,
    cutout=0,
)
GPU = dict(
    epochs=24,
    width=64,              # 6.57 M parameters
    batch_size=512,
    lr=0.4,
    warmup=0.2,
    weight_decay=5e-4,
    label_smoothing=0.2,
    max_shift=4,
    cutout=8,
    target=0.94,
    seeds=(0, 1, 2),
)
TUTORIAL = dict(epochs=2, batch_size=4, lr=0.001, momentum=0.9)  # the PyTorch "Training a classifier" tutorial

# Folders that may hold cifar10-jpg-{train,test}.zip: the team's shared folder, or the checkout's data/ (a GPU
# machine that receives only the checkout gets the zips there, 62 MiB together).
SHARED_ZIPS = [ROOT.parent / "shared" / "data", pathlib.Path("/work/shared/data"), ROOT / "data"]


# ----------------------------------------------------------------------------- data
def find_data(explicit: str | None) -> pathlib.Path | None:
    """A folder with CIFAR-10 in a layout cnn_course.cifar reads, unzipping the shared JPEG copy if needed."""
    if explicit:
        return pathlib.Path(explicit)
    if os.environ.get(cifar.ENV_DATA):
        return pathlib.Path(os.environ[cifar.ENV_DATA])
    target = ROOT / "data" / "cifar10-jpg"
    if (target / "train").is_dir() and (target / "test").is_dir():
        return target
    for folder in SHARED_ZIPS:
        zips = [folder / "cifar10-jpg-train.zip", folder / "cifar10-jpg-test.zip"]
        if all(z.is_file() for z in zips):
            print(f"unzipping {folder}/cifar10-jpg-*.zip into {target} (once) ...", flush=True)
            target.mkdir(parents=True, exist_ok=True)
            for z in zips:
                with zipfile.ZipFile(z) as archive:
                    archive.extractall(target)
            return target
    local = ROOT / "data" / "cifar10"
    return local if cifar.layout(local) in ("torchvision", "imagefolder") else None


def load(root: pathlib.Path):
    start = time.perf_counter()
    train = cifar.load_split(root, train=True)
    test = cifar.load_split(root, train=False)
    print(f"data: {root} ({cifar.layout(root)}): {len(train[0]):,} training, {len(test[0]):,} test images "
          f"({time.perf_counter() - start:.1f} s to load)", flush=True)
    return train, test


# ----------------------------------------------------------------------------- augmentation (batched)
def shift(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, max_shift: int, mode: str = "constant") -> torch.Tensor:
    """Image i moved down dy[i] and right dx[i] pixels (each in [-max_shift, max_shift]); the border filled by
    F.pad's ``mode`` ("constant": zeros, "reflect": mirrored). One gather, no loop over images."""
    n, c, h, w = x.shape
    dev = x.device
    padded = F.pad(x, (max_shift,) * 4, mode=mode)
    rows = (torch.arange(h, device=dev) + max_shift - dy.view(n, 1)).view(n, 1, h, 1)
    cols = (torch.arange(w, device=dev) + max_shift - dx.view(n, 1)).view(n, 1, 1, w)
    return padded[torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1),
                  rows, cols]


def flip_translate(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Per image: flip left-right with probability 1/2, shift by up to max_shift pixels, zero fill."""
    n = len(x)
    flip = torch.rand(n, device=x.device, generator=generator) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    if max_shift == 0:
        return x
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2, n), device=x.device, generator=generator)
    return shift(x, dy, dx, max_shift)


def batches(images, labels, batch_size, generator, augment=None, channels_last=False):
    """One epoch of shuffled, normalised (and augmented) batches from uint8 images already on the device."""
    order = torch.randperm(len(images), device=images.device, generator=generator)
    for i in range(0, len(images) - batch_size + 1, batch_size):
        idx = order[i:i + batch_size]
        x = cifar.normalize(images[idx])
        if augment is not None:
            x = augment(x)
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, labels[idx]


# ----------------------------------------------------------------------------- the CPU network (airbench style)
class ShiftOnlyBatchNorm(nn.BatchNorm2d):
    """Batch norm whose scale stays 1 (only the shift learns); running statistics follow the last few batches."""

    def __init__(self, channels: int):
        super().__init__(channels, eps=1e-12, momentum=0.4)
        self.weight.requires_grad_(False)


def identity_conv(c_in: int, c_out: int) -> nn.Conv2d:
    """A 3x3 convolution whose first c_in filters start as the identity: an implicit skip connection at the start."""
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[:c_in])
    return conv


def conv_group(c_in: int, c_out: int) -> nn.Sequential:
    """conv -> max pool 2 -> BN -> GELU -> conv -> BN -> GELU: pooling before the first BN halves its work."""
    return nn.Sequential(identity_conv(c_in, c_out), nn.MaxPool2d(2), ShiftOnlyBatchNorm(c_out), nn.GELU(),
                         identity_conv(c_out, c_out), ShiftOnlyBatchNorm(c_out), nn.GELU())


def whitened_net(widths=CPU["widths"], num_classes: int = 10, logit_scale: float = 1 / 9) -> nn.Sequential:
    """32x32 -> 2x2 whitening conv (31x31, 24 channels, fixed; see init_whitening) -> three conv groups
    (15, 7, 3 pixels) -> max over the last 3x3 -> linear, logits times logit_scale."""
    whiten = nn.Conv2d(3, 24, 2, bias=True)
    whiten.weight.requires_grad_(False)
    return nn.Sequential(whiten, nn.GELU(), conv_group(24, widths[0]), conv_group(widths[0], widths[1]),
                         conv_group(widths[1], widths[2]), nn.MaxPool2d(3), nn.Flatten(),
                         nn.Linear(widths[2], num_classes, bias=False), cifar.Scale(logit_scale))


@torch.no_grad()
def init_whitening(conv: nn.Conv2d, images: torch.Tensor, eps: float = 5e-4) -> None:
    """Set the 2x2 conv's 24 filters to +/- the 12 eigenvectors of the covariance of the images' 2x2x3 patches,
    each divided by the square root of its eigenvalue: the first layer's outputs are decorrelated, unit variance."""
    patches = images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 2, 3, 1, 4, 5).reshape(-1, 12).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    filters = (eigenvectors.T / (eigenvalues + eps).sqrt().view(-1, 1)).reshape(12, 3, 2, 2)
    conv.weight.copy_(torch.cat([filters, -filters]).to(conv.weight.dtype))


def alternating_flip_batches(images, labels, batch_size, epoch, first_flips, max_shift, generator):
    """One epoch of shuffled, normalised, augmented, channels-last batches. Image i is mirrored in even epochs
    where first_flips[i], in odd epochs where not: every image is seen both ways in any two epochs in a row
    (random flips repeat a view half the time). Then a random shift of up to max_shift pixels, reflect padding."""
    n = len(images)
    order = torch.randperm(n, generator=generator)
    for i in range(0, n - batch_size + 1, batch_size):
        idx = order[i:i + batch_size]
        x = cifar.normalize(images[idx])
        flip = first_flips[idx] ^ bool(epoch % 2)
        x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if max_shift:
            offsets = torch.randint(0, 2 * max_shift + 1, (2, len(idx)), generator=generator)
            x = shift(x, max_shift - offsets[0], max_shift - offsets[1], max_shift, mode="reflect")
        yield x.contiguous(memory_format=torch.channels_last), labels[idx]


def triangle(progress: float, peak: float = 0.23) -> float:
    """The learning rate as a fraction of its peak: 0.2 -> 1 at ``peak`` of training -> 0.07 at the end."""
    if progress < peak:
        return 0.2 + 0.8 * progress / peak
    return 1.0 - 0.93 * (progress - peak) / (1 - peak)


class Lookahead:
    """Every k steps, the weights and a slow copy of them both move to decay * slow + (1 - decay) * weights.
    With decay = 0.95**5 * progress**3 this does nothing early and averages the last steps' weights late."""

    def __init__(self, model: nn.Module):
        self.model = model
        self.slow = {k: v.detach().clone() for k, v in model.state_dict().items() if v.is_floating_point()}

    @torch.no_grad()
    def step(self, decay: float) -> None:
        for name, value in self.model.state_dict().items():
            if name in self.slow:
                self.slow[name].lerp_(value, 1 - decay)
                value.copy_(self.slow[name])


def orthogonalise(g: torch.Tensor, steps: int = 3) -> torch.Tensor:
    """Roughly U V^T for g = U S V^T (every singular value pushed towards 1) by a quintic Newton-Schulz iteration
    with Muon's coefficients, which trade exactness for few steps: values end below about 1.5, the small ones
    raised a lot but not all the way to 1."""
    a, b, c = 3.4445, -4.7750, 2.0315
    x = g / (g.norm() + 1e-7)
    wide = x.shape[0] <= x.shape[1]
    x = x if wide else x.T  # iterate on the smaller Gram matrix
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x if wide else x.T


class Muon(torch.optim.Optimizer):
    """For the convolutions' filters: Nesterov momentum, then the update with each layer's filters as the rows of a
    matrix orthogonalised (every direction moves by the same amount), a step of ``lr`` after rescaling the filters
    to norm sqrt(number of filters), so ``lr`` sets the relative change per step. (torch.optim.Muon takes
    matrices only and keeps no fixed norm.)"""

    def __init__(self, params, lr: float, momentum: float):
        super().__init__(params, dict(lr=lr, momentum=momentum))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                buf = self.state[p].setdefault("momentum", torch.zeros_like(p.grad))
                buf.mul_(group["momentum"]).add_(p.grad)
                update = p.grad.add(buf, alpha=group["momentum"])
                p.mul_(len(p) ** 0.5 / p.norm())
                p.add_(orthogonalise(update.reshape(len(p), -1)).view(p.shape), alpha=-group["lr"])


# ----------------------------------------------------------------------------- training
def make_optimizer(model, hyp):
    decay = [p for p in model.parameters() if p.ndim > 1]
    rest = [p for p in model.parameters() if p.ndim <= 1]
    return torch.optim.SGD([{"params": decay, "weight_decay": hyp["weight_decay"]},
                            {"params": rest, "weight_decay": 0.0}], lr=hyp["lr"], momentum=0.9, nesterov=True)


@torch.no_grad()
def test_accuracy(model, images, labels, device, channels_last=False, amp=None) -> tuple[float, float]:
    """(plain accuracy, accuracy with test-time flips: logits of the image and its mirror image averaged)."""
    model.eval()
    plain = tta = 0
    for i in range(0, len(images), 1000):
        x = cifar.normalize(images[i:i + 1000])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            logits = model(x).float()
            both = logits + model(x.flip(-1)).float()
        plain += int((logits.argmax(1) == labels[i:i + 1000]).sum())
        tta += int((both.argmax(1) == labels[i:i + 1000]).sum())
    model.train()
    return plain / len(images), tta / len(images)


def cpu_optimizers(model: nn.Sequential, hyp: dict) -> list[torch.optim.Optimizer]:
    """The optimizers of the CPU recipe; each group's "peak" learning rate and "until" (the fraction of training
    after which its rate is 0) drive set_learning_rates. The loss is summed over the batch, so SGD rates are per image."""
    whiten_bias = [model[0].bias]
    norm_biases = [p for m in model.modules() if isinstance(m, ShiftOnlyBatchNorm) for p in [m.bias]]
    until = hyp["whiten_bias_until"]
    if hyp["optimizer"] == "muon":
        filters = [p for p in model.parameters() if p.ndim == 4 and p.requires_grad]
        decay = hyp["weight_decay"] * hyp["batch_size"]  # per step; PyTorch multiplies weight_decay by lr
        groups = [(whiten_bias, hyp["bias_lr"], until), (norm_biases, hyp["bias_lr"], 1.0),
                  ([model[-2].weight], hyp["head_lr"], 1.0)]
        sgd = torch.optim.SGD([{"params": ps, "lr": lr, "weight_decay": decay / lr, "peak": lr, "until": u}
                               for ps, lr, u in groups], momentum=0.85, nesterov=True)
        muon = Muon(filters, lr=hyp["muon_lr"], momentum=hyp["muon_momentum"])
        muon.param_groups[0].update(peak=hyp["muon_lr"], until=1.0)
        return [sgd, muon]
    # airbench94's SGD: rates per 1,024 images with momentum's 1 + 1/(1 - m) folded out; biases 64x faster.
    per_kilo = 1024 * (1 + 1 / (1 - hyp["momentum"]))
    lr = hyp["lr"] / per_kilo
    bias_lr = lr * hyp["bias_scaler"]
    decay = hyp["weight_decay"] * hyp["batch_size"] / per_kilo
    weights = [p for p in model.parameters() if p.ndim > 1 and p.requires_grad]
    groups = [(whiten_bias, lr, until), (norm_biases, bias_lr, 1.0), (weights, lr, 1.0)]
    return [torch.optim.SGD([{"params": ps, "lr": r, "weight_decay": decay / r, "peak": r, "until": u}
                             for ps, r, u in groups], momentum=hyp["momentum"], nesterov=True)]


def set_learning_rates(optimizers, progress: float, optimizer: str) -> float:
    """Set every group's rate for this point of training and return the main schedule's factor: Muon recipe,
    straight down from the peak to 0 (the whitening bias reaches 0 at its "until"); SGD recipe, airbench's triangle
    (the whitening bias follows it until it freezes)."""
    factor = 1 - progress if optimizer == "muon" else triangle(progress)
    for opt in optimizers:
        for group in opt.param_groups:
            if progress >= group["until"]:
                group["lr"] = 0.0
            elif optimizer == "muon" and group["until"] < 1:
                group["lr"] = group["peak"] * (1 - progress / group["until"])
            else:
                group["lr"] = group["peak"] * factor
    return factor


def train_for_time(data, hyp, seed, clock=None) -> dict:
    """CPU mode: the whitened network until the time budget is spent, its schedules driven by the clock (a
    cifar.TrainingClock of hyp["minutes"], unless another clock with its interface is given)."""
    (train_x, train_y), (test_x, test_y) = data
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    muon = hyp["optimizer"] == "muon"
    model = whitened_net(hyp["widths"], logit_scale=1 / hyp["widths"][2] if muon else 1 / 9)
    if muon:
        with torch.no_grad():
            model[-2].weight.div_(model[-2].weight.std())  # unit-variance head: logits / width start near 1
    model = model.to(memory_format=torch.channels_last)
    whiten = model[0]
    whiten.weight.requires_grad_(not hyp["whitening"])  # without whitening: an ordinary trained 2x2 stem
    optimizers = cpu_optimizers(model, hyp)
    lookahead = Lookahead(model) if not muon and hyp["lookahead"] else None
    flips = torch.rand(len(train_x), generator=gen) < 0.5
    clock = clock or cifar.TrainingClock(hyp["minutes"] * 60)
    seen = steps = epoch = 0
    if hyp["whitening"]:
        with clock.running():  # computed from the data: part of training
            init_whitening(whiten, cifar.normalize(train_x[:5000]))
    model.train()
    while not clock.spent:
        if not hyp["alternating_flips"] and epoch:
            flips = torch.rand(len(train_x), generator=gen) < 0.5  # and epoch parity 0 below: plain random flips
        parity = epoch if hyp["alternating_flips"] else 0
        with clock.running():
            for x, y in clock.batches(alternating_flip_batches(train_x, train_y, hyp["batch_size"], parity, flips,
                                                               hyp["max_shift"], gen)):
                progress = clock.progress()
                whiten.bias.requires_grad_(progress < hyp["whiten_bias_until"])
                factor = set_learning_rates(optimizers, progress, hyp["optimizer"])
                loss = F.cross_entropy(model(x), y, label_smoothing=hyp["label_smoothing"], reduction="sum")
                for opt in optimizers:
                    opt.zero_grad(set_to_none=True)
                loss.backward()
                for opt in optimizers:
                    opt.step()
                seen += len(y)
                steps += 1
                if lookahead is not None and steps % 5 == 0:
                    lookahead.step(0.95 ** 5 * progress ** 3)
                if steps % 10 == 0:
                    used = clock.progress() * clock.seconds
                    print(f"  {used:6.0f} s  epoch {epoch + 1}  step {steps}  loss {loss.item() / len(y):.3f}  "
                          f"lr x{factor:.2f}  {seen / used:,.0f} images/s", flush=True)
        epoch += 1
    if lookahead is not None:
        lookahead.step(1.0)  # end on the slow weights
    spent = clock.used
    plain, tta = test_accuracy(model, test_x, test_y, torch.device("cpu"), channels_last=True)
    return {"seconds": spent, "images": seen, "epochs": seen / len(train_x), "steps": steps,
            "accuracy": plain, "tta_accuracy": tta, "images_per_s": seen / spent}


def train_lesson_recipe_for_time(data, hyp, seed, device) -> dict:
    """Lesson 08's recipe (ResNet-9, one-cycle on the clock) until the time budget is spent: the reference."""
    (train_x, train_y), (test_x, test_y) = data
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    model = cifar.reference_model(width=hyp["width"]).to(device, memory_format=torch.channels_last)  # NHWC: faster here too
    opt = make_optimizer(model, hyp)
    clock = cifar.TrainingClock(hyp["minutes"] * 60, hyp["warmup"])  # the lesson's quick mode uses the same clock
    augment = lambda x: cifar.random_cutout(flip_translate(x, hyp["max_shift"], gen), hyp["cutout"], gen)  # noqa: E731
    seen, steps, epoch = 0, 0, 0
    model.train()
    while not clock.spent:
        epoch += 1
        with clock.running():  # batch preparation (gather, augment) counts as training time
            for x, y in clock.batches(batches(train_x, train_y, hyp["batch_size"], gen, augment, channels_last=True)):
                factor = cifar.one_cycle(clock.progress(), hyp["warmup"])
                for group in opt.param_groups:
                    group["lr"] = hyp["lr"] * factor
                loss = F.cross_entropy(model(x), y, label_smoothing=hyp["label_smoothing"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                seen += len(y)
                steps += 1
                if steps % 50 == 0:
                    used = clock.progress() * clock.seconds
                    print(f"  {used:6.0f} s  epoch {epoch}  step {steps}  loss {loss.item():.3f}  "
                          f"lr {hyp['lr'] * factor:.3f}  {seen / used:,.0f} images/s", flush=True)
    spent = clock.used
    plain, tta = test_accuracy(model, test_x, test_y, device, channels_last=True)
    return {"seconds": spent, "images": seen, "epochs": seen / len(train_x), "steps": steps,
            "accuracy": plain, "tta_accuracy": tta, "images_per_s": seen / spent}


def train_to_target(data, hyp, seed, device) -> dict:
    """GPU mode: the full recipe for hyp['epochs'] epochs; time (training only) when TTA accuracy first >= target."""
    (train_x, train_y), (test_x, test_y) = data
    torch.manual_seed(seed)
    gen = torch.Generator(device=device).manual_seed(seed)
    amp = cifar.amp_dtype_for(device)
    cl = device.type == "cuda"
    model = cifar.reference_model(width=hyp["width"]).to(device, memory_format=torch.channels_last)
    opt = make_optimizer(model, hyp)
    steps_per_epoch = len(train_x) // hyp["batch_size"]
    total = hyp["epochs"] * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cifar.one_cycle(s / total, hyp["warmup"]))
    augment = lambda x: cifar.random_cutout(flip_translate(x, hyp["max_shift"], gen), hyp["cutout"], gen)  # noqa: E731
    # Warm-up pass (cuDNN autotuning), not timed: a few steps on a throwaway copy.
    scratch = cifar.reference_model(width=hyp["width"]).to(device, memory_format=torch.channels_last)
    for x, y in batches(train_x[:hyp["batch_size"] * 3], train_y[:hyp["batch_size"] * 3], hyp["batch_size"], gen,
                        augment, cl):
        with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            F.cross_entropy(scratch(x), y).backward()
    del scratch
    cifar.synchronize(device)
    spent, reached, history = 0.0, None, []
    for epoch in range(1, hyp["epochs"] + 1):
        cifar.synchronize(device)
        start = time.perf_counter()
        model.train()
        for x, y in batches(train_x, train_y, hyp["batch_size"], gen, augment, cl):
            with torch.autocast(device.type, dtype=amp or torch.bfloat16, enabled=amp is not None):
                loss = F.cross_entropy(model(x), y, label_smoothing=hyp["label_smoothing"])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        cifar.synchronize(device)
        spent += time.perf_counter() - start
        plain, acc = test_accuracy(model, test_x, test_y, device, channels_last=cl, amp=amp)
        history.append((plain, acc))
        print(f"  seed {seed} epoch {epoch:2d}  {spent:6.1f} s  test accuracy (flip TTA) {acc:.2%}", flush=True)
        if reached is None and acc >= hyp["target"]:
            reached = spent
    return {"seconds": spent, "time_to_target": reached, "accuracy": history[-1][0], "tta_accuracy": history[-1][1],
            "images_per_s": hyp["epochs"] * steps_per_epoch * hyp["batch_size"] / spent}


def tutorial_recipe(data, seed, device) -> dict:
    """The PyTorch 'Training a classifier' tutorial: its LeNet-style net, SGD lr 0.001 momentum 0.9, batch 4,
    2 epochs, inputs normalised with mean 0.5 and std 0.5; batches served from the device as above."""
    (train_x, train_y), (test_x, test_y) = data
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
                              torch.nn.Conv2d(6, 16, 5), torch.nn.ReLU(), torch.nn.MaxPool2d(2), torch.nn.Flatten(),
                              torch.nn.Linear(400, 120), torch.nn.ReLU(), torch.nn.Linear(120, 84), torch.nn.ReLU(),
                              torch.nn.Linear(84, 10)).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=TUTORIAL["lr"], momentum=TUTORIAL["momentum"])
    gen = torch.Generator(device=device).manual_seed(seed)
    scale = lambda u8: (u8.float() / 255 - 0.5) / 0.5  # noqa: E731
    cifar.synchronize(device)
    start = time.perf_counter()
    for _ in range(TUTORIAL["epochs"]):
        order = torch.randperm(len(train_x), device=device, generator=gen)
        for i in range(0, len(order), TUTORIAL["batch_size"]):
            idx = order[i:i + TUTORIAL["batch_size"]]
            loss = F.cross_entropy(net(scale(train_x[idx])), train_y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    cifar.synchronize(device)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        correct = sum(int((net(scale(test_x[i:i + 1000])).argmax(1) == test_y[i:i + 1000]).sum())
                      for i in range(0, len(test_x), 1000))
    return {"seconds": seconds, "accuracy": correct / len(test_x)}


# ----------------------------------------------------------------------------- main
def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="GPU mode: time to 94%%, 3 seeds, tutorial recipe beside")
    parser.add_argument("--data", help="CIFAR-10 folder (torchvision or ImageFolder layout)")
    parser.add_argument("--minutes", type=float, default=CPU["minutes"], help="CPU training budget")
    parser.add_argument("--threads", type=int, default=CPU["threads"])
    parser.add_argument("--beside-lesson", action="store_true",
                        help="CPU mode: then train lesson 08's recipe for the same time and compare")
    parser.add_argument("--widths", type=int, nargs=3, help="CPU network's three group widths (default 32 128 128)")
    parser.add_argument("--no-whitening", action="store_true", help="CPU: a trained 2x2 stem, not the whitening one")
    parser.add_argument("--no-lookahead", action="store_true", help="CPU sgd: plain SGD weights at the end")
    parser.add_argument("--random-flips", action="store_true", help="CPU: flip at random, not every other epoch")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--optimizer", choices=("muon", "sgd"), default=CPU["optimizer"],
                        help="CPU: Muon for the filters (default), or airbench94's SGD with lookahead")
    parser.add_argument("--muon-lr", type=float, help="CPU: Muon's step (default 0.24)")
    parser.add_argument("--lr", type=float, help="CPU sgd: per 1,024 images (default 11.5); GPU: peak (default 0.4)")
    parser.add_argument("--max-shift", type=int, help="random translation in pixels (default: CPU 2, GPU 4)")
    parser.add_argument("--label-smoothing", type=float, help="(default 0.2)")
    parser.add_argument("--width", type=int, help="GPU: ResNet-9 width (default 64)")
    parser.add_argument("--warmup", type=float, help="GPU: fraction of the steps spent warming up")
    parser.add_argument("--seed", type=int, default=0, help="CPU mode seed")
    parser.add_argument("--test-subset", type=int, help="development runs only: evaluate on N random test images")
    parser.add_argument("--seeds", type=int, nargs="+", help="GPU mode seeds (default 0 1 2)")
    parser.add_argument("--epochs", type=int, help="GPU mode epochs (default 24)")
    parser.add_argument("--no-tutorial", action="store_true", help="GPU mode: skip the tutorial recipe")
    args = parser.parse_args(argv)

    root = find_data(args.data)
    if root is None or cifar.layout(root) in (None, "fake"):
        print("SKIPPED: no CIFAR-10 found (looked at --data, $CNN_COURSE_CIFAR10, ../shared/data/cifar10-jpg-*.zip, "
              "data/cifar10-jpg, data/cifar10); nothing was downloaded.")
        return 0

    if args.gpu:
        if not torch.cuda.is_available():
            print("SKIPPED: --gpu needs a CUDA GPU; run without --gpu for the CPU benchmark.")
            return 0
        device = torch.device("cuda")
        hyp = dict(GPU)
        for key in ("width", "batch_size", "lr", "epochs", "max_shift", "label_smoothing", "warmup"):
            if getattr(args, key) is not None:
                hyp[key] = getattr(args, key)
        seeds = args.seeds or list(GPU["seeds"])
        (tx, ty), (vx, vy) = load(root)
        data = ((tx.to(device), ty.to(device)), (vx.to(device), vy.to(device)))
        print(f"GPU: {torch.cuda.get_device_name()}, torch {torch.__version__}, "
              f"autocast {cifar.amp_dtype_for(device)}, channels-last")
        print("settings:", hyp)
        runs = [train_to_target(data, hyp, seed, device) for seed in seeds]
        print("\nseed  time to 94% (s)  total (s)  accuracy  with flip TTA  images/s")
        for seed, r in zip(seeds, runs):
            ttt = f"{r['time_to_target']:.1f}" if r["time_to_target"] is not None else "not reached"
            print(f"{seed:4d}  {ttt:>15s}  {r['seconds']:9.1f}  {r['accuracy']:8.2%}  {r['tta_accuracy']:13.2%}  "
                  f"{r['images_per_s']:,.0f}")
        mean_tta = sum(r["tta_accuracy"] for r in runs) / len(runs)
        print(f"mean final accuracy with flip TTA: {mean_tta:.2%} over {len(runs)} seeds")
        if not args.no_tutorial:
            t = tutorial_recipe(data, seeds[0], device)
            print(f"PyTorch tutorial recipe (LeNet-style net, batch 4, 2 epochs), same GPU and data: "
                  f"{t['accuracy']:.2%} in {t['seconds']:.1f} s")
        return 0

    torch.set_num_threads(args.threads)
    hyp = {**CPU, **(SGD_CPU if args.optimizer == "sgd" else {}), "optimizer": args.optimizer, "minutes": args.minutes,
           "threads": args.threads, "whitening": not args.no_whitening, "alternating_flips": not args.random_flips}
    if args.optimizer == "sgd":
        hyp["lookahead"] = not args.no_lookahead
    for key in ("widths", "batch_size", "lr", "muon_lr", "max_shift", "label_smoothing"):
        if getattr(args, key) is not None:
            hyp[key] = tuple(getattr(args, key)) if key == "widths" else getattr(args, key)
    data = load(root)
    if args.test_subset:
        (tx, ty), (vx, vy) = data
        keep = torch.randperm(len(vx), generator=torch.Generator().manual_seed(0))[:args.test_subset]
        data = ((tx, ty), (vx[keep], vy[keep]))
        print(f"DEVELOPMENT RUN: test accuracy on {len(keep):,} random test images only")
    print(f"CPU: {args.threads} threads, torch {torch.__version__}; seed {args.seed}")
    print("settings:", hyp, f"({cifar.count_parameters(whitened_net(hyp['widths'])):,} parameters)")
    r = train_for_time(data, hyp, args.seed)
    summary = (f"test accuracy {r['accuracy']:.2%}, with flip TTA {r['tta_accuracy']:.2%}  |  {r['seconds']:.0f} s of "
               f"training, {r['epochs']:.2f} epochs, {r['images_per_s']:,.0f} images/s")
    print(f"\nRESULT  {summary}  |  seed {args.seed}, data {root}")
    if args.beside_lesson:
        lesson = dict(LESSON_CPU, minutes=args.minutes)
        print("\nlesson 08's recipe for the same time:", lesson, flush=True)
        ref = train_lesson_recipe_for_time(data, lesson, args.seed, torch.device("cpu"))
        print(f"\nthis recipe    {summary}")
        print(f"lesson 08's    test accuracy {ref['accuracy']:.2%}, with flip TTA {ref['tta_accuracy']:.2%}  |  "
              f"{ref['seconds']:.0f} s of training, {ref['epochs']:.2f} epochs, {ref['images_per_s']:,.0f} images/s")
        print(f"difference     {100 * (r['tta_accuracy'] - ref['tta_accuracy']):+.2f} points with flip TTA; "
              f"errors x{(1 - r['tta_accuracy']) / (1 - ref['tta_accuracy']):.2f}")
    return 0

if __name__ == "__main__":
    sys.exit(main())
