"""CIFAR-10 with the lesson-08 recipe: the best accuracy in a fixed time on a CPU, or time to 94% on a GPU.

    python benchmarks/cifar10_cpu.py                      # CPU: 10 minutes of training on 2 threads
    python benchmarks/cifar10_cpu.py --minutes 0.5        # a short development run
    python benchmarks/cifar10_cpu.py --gpu                # GPU: time to 94%, 3 seeds, beside the PyTorch tutorial

Data (first match): --data PATH; $CNN_COURSE_CIFAR10; data/cifar10-jpg/; the JPEG zips in ../shared/data/,
/work/shared/data/ or data/, unzipped once into data/cifar10-jpg/ (git-ignored); data/cifar10 (torchvision's
copy). Nothing is downloaded.
The JPEG copy is close to, not identical with, the official pixels: compare methods on the same copy.

The recipe (one file, airbench style): the whole data set on the device as uint8; per batch, gather ->
normalise -> random flip + translate (zero fill) [-> cutout] as batched tensor operations; a ResNet-9 with
batch norm (cnn_course.cifar.reference_model); SGD + Nesterov, one-cycle learning rate, label smoothing;
channels-last everywhere and bfloat16 autocast on a GPU; test-time flip augmentation.

On the CPU the schedule follows the clock, not a step count: the learning rate at each step is the
one-cycle curve evaluated at (training time so far) / (time budget), and training stops when the budget is
spent, so the run uses exactly the time it is given whatever the machine's speed. Evaluation is not counted.
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

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from cnn_course import cifar  # noqa: E402

# ----------------------------------------------------------------------------- hyperparameters
CPU = dict(
    minutes=10.0,          # training time budget (evaluation excluded)
    threads=2,
    width=16,              # ResNet-9 width: 16 -> 0.41 M parameters (64 is the full network)
    batch_size=128,
    lr=0.4,                # peak of the one-cycle schedule (SGD, Nesterov momentum 0.9)
    warmup=0.15,           # fraction of the budget spent warming up
    weight_decay=5e-4,     # on weights, not on batch-norm parameters
    label_smoothing=0.2,
    max_shift=2,           # random translation, pixels
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
def flip_translate(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Per image: flip left-right with probability 1/2, shift by up to max_shift pixels, zero fill."""
    n, c, h, w = x.shape
    dev = x.device
    flip = torch.rand(n, device=dev, generator=generator) < 0.5
    x = torch.where(flip.view(n, 1, 1, 1), x.flip(-1), x)
    if max_shift == 0:
        return x
    dy, dx = torch.randint(-max_shift, max_shift + 1, (2, n), device=dev, generator=generator)
    padded = F.pad(x, (max_shift,) * 4)
    rows = (torch.arange(h, device=dev) + max_shift - dy.view(n, 1)).view(n, 1, h, 1)
    cols = (torch.arange(w, device=dev) + max_shift - dx.view(n, 1)).view(n, 1, 1, w)
    return padded[torch.arange(n, device=dev).view(n, 1, 1, 1), torch.arange(c, device=dev).view(1, c, 1, 1),
                  rows, cols]


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


def train_for_time(data, hyp, seed, device) -> dict:
    """CPU mode: train until the time budget is spent, with the one-cycle schedule on the clock."""
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
    parser.add_argument("--width", type=int, help="ResNet-9 width (default: CPU 16, GPU 64)")
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--max-shift", type=int, help="random translation in pixels (default: CPU 2, GPU 4)")
    parser.add_argument("--label-smoothing", type=float, help="(default 0.2)")
    parser.add_argument("--warmup", type=float, help="fraction of the budget or steps spent warming up")
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
    device = torch.device("cpu")
    hyp = dict(CPU, minutes=args.minutes, threads=args.threads)
    for key in ("width", "batch_size", "lr", "max_shift", "label_smoothing", "warmup"):
        if getattr(args, key) is not None:
            hyp[key] = getattr(args, key)
    data = load(root)
    if args.test_subset:
        (tx, ty), (vx, vy) = data
        keep = torch.randperm(len(vx), generator=torch.Generator().manual_seed(0))[:args.test_subset]
        data = ((tx, ty), (vx[keep], vy[keep]))
        print(f"DEVELOPMENT RUN: test accuracy on {len(keep):,} random test images only")
    print(f"CPU: {args.threads} threads, torch {torch.__version__}; seed {args.seed}")
    print("settings:", hyp, f"({cifar.count_parameters(cifar.reference_model(width=hyp['width'])):,} parameters)")
    r = train_for_time(data, hyp, args.seed, device)
    print(f"\nRESULT  test accuracy {r['accuracy']:.2%}, with flip TTA {r['tta_accuracy']:.2%}  |  "
          f"{r['seconds']:.0f} s of training, {r['epochs']:.2f} epochs, {r['images_per_s']:,.0f} images/s  |  "
          f"seed {args.seed}, data {root}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
