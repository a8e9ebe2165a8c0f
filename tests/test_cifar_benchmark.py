"""benchmarks/cifar10_cpu.py's CPU recipe: its parts do what its docstrings say, and it learns.

The recipe's accuracy on CIFAR-10 is measured by running the benchmark (minutes, real data), not here.
"""

import contextlib
import importlib.util
import pathlib

import pytest
import torch
import torch.nn.functional as F

ROOT = pathlib.Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("cifar10_cpu", ROOT / "benchmarks" / "cifar10_cpu.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)


def smooth_images(n, seed=0):
    """Images whose neighbouring pixels and channels are strongly correlated (as in photographs)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.randn(n, 1, 8, 8, generator=g)
    x = F.interpolate(coarse, size=32, mode="bilinear", align_corners=False).repeat(1, 3, 1, 1)
    return x + 0.3 * torch.randn(n, 3, 32, 32, generator=g)


def patch_covariance(outputs):
    flat = outputs.permute(1, 0, 2, 3).reshape(outputs.shape[1], -1).double()
    return flat @ flat.T / flat.shape[1]


def test_whitening_decorrelates_the_patches():
    images = smooth_images(64)
    before = patch_covariance(images.unfold(2, 2, 1).unfold(3, 2, 1).permute(0, 1, 4, 5, 2, 3).reshape(64, 12, 31, 31))
    assert (before - torch.diag(before.diag())).abs().max() > 0.5 * before.diag().min()  # correlated, as photographs
    conv = torch.nn.Conv2d(3, 24, 2, bias=False)
    bench.init_whitening(conv, images, eps=0.0)
    with torch.no_grad():
        out = conv(images)
    cov = patch_covariance(out[:, :12])
    assert torch.allclose(cov, torch.eye(12, dtype=cov.dtype), atol=1e-3), cov
    assert torch.allclose(out[:, 12:], -out[:, :12])  # and the other 12 filters are their negatives


def test_alternating_flips_show_each_image_both_ways_in_two_epochs():
    n = 64
    images = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8)
    labels = torch.arange(n)  # the label names the image
    flips = torch.rand(n, generator=torch.Generator().manual_seed(1)) < 0.5
    plain = bench.cifar.normalize(images)
    seen = {}
    for epoch in (0, 1):
        for x, y in bench.alternating_flip_batches(images, labels, 16, epoch, flips, 0, torch.Generator().manual_seed(epoch)):
            assert x.is_contiguous(memory_format=torch.channels_last)
            for img, i in zip(x, y.tolist()):
                mirrored = torch.equal(img, plain[i].flip(-1))
                assert mirrored or torch.equal(img, plain[i])
                seen.setdefault(i, []).append(mirrored)
    assert sorted(seen) == list(range(n))
    assert all(sorted(ways) == [False, True] for ways in seen.values())
    assert [seen[i][0] for i in range(n)] == flips.tolist()


def test_shifts_move_the_image_by_at_most_max_shift_with_reflect_padding():
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    flips = torch.zeros(32, dtype=torch.bool)
    x, y = next(bench.alternating_flip_batches(images, torch.arange(32), 32, 0, flips, 2, torch.Generator().manual_seed(0)))
    padded = F.pad(bench.cifar.normalize(images), (2, 2, 2, 2), mode="reflect")
    offsets = set()
    for img, i in zip(x, y.tolist()):
        found = [(dy, dx) for dy in range(5) for dx in range(5) if torch.equal(img, padded[i, :, dy:dy + 32, dx:dx + 32])]
        assert found, "each image is a 32x32 window of the reflect-padded image"
        offsets.add(found[0])
    assert len(offsets) > 5  # drawn per image


def test_lookahead_moves_weights_and_slow_copy_together():
    model = torch.nn.Linear(3, 2)
    look = bench.Lookahead(model)
    start = model.weight.detach().clone()
    with torch.no_grad():
        model.weight.add_(1.0)
    look.step(0.25)  # both become 0.25 * slow + 0.75 * current
    assert torch.allclose(model.weight, start + 0.75)
    with torch.no_grad():
        model.weight.add_(1.0)
    look.step(1.0)  # back to the slow weights
    assert torch.allclose(model.weight, start + 0.75)


def test_triangle_schedule():
    assert bench.triangle(0.0) == pytest.approx(0.2)
    assert bench.triangle(0.23) == pytest.approx(1.0)
    assert bench.triangle(1.0) == pytest.approx(0.07)
    assert bench.triangle(0.1) < bench.triangle(0.2) and bench.triangle(0.5) > bench.triangle(0.9)


def test_orthogonalise_keeps_the_singular_vectors_and_evens_out_the_singular_values():
    g = torch.randn(32, 72, generator=torch.Generator().manual_seed(0)) @ torch.diag(torch.logspace(-2, 1, 72))
    u, s, vh = torch.linalg.svd(g, full_matrices=False)
    assert s.max() / s.min() > 20
    o = bench.orthogonalise(g)
    inner = u.T @ o @ vh.T  # diagonal when o has g's singular vectors
    assert (inner - torch.diag(inner.diag())).abs().max() < 1e-3
    values = inner.diag()
    assert values.min() > 0 and values.max() < 1.6  # Muon's three steps: towards 1, not all the way
    assert values.max() / values.min() < 10
    assert torch.allclose(bench.orthogonalise(g.T), o.T, atol=1e-5)  # tall matrices the same way


def test_muon_keeps_each_layers_filters_at_a_fixed_norm_and_steps_by_lr():
    w = torch.nn.Parameter(torch.randn(16, 8, 3, 3) * 5)
    opt = bench.Muon([w], lr=0.1, momentum=0.0)
    w.grad = torch.randn_like(w)
    before = w.detach().clone()
    opt.step()
    rescaled = before * (16 ** 0.5 / before.norm())
    step = (w.detach() - rescaled).reshape(16, -1)
    assert torch.allclose(step, -0.1 * bench.orthogonalise(w.grad.reshape(16, -1)), atol=1e-6)


class StepClock:
    """TrainingClock's interface with progress counted in batches, not seconds: the test asks for an amount of
    work, so a loaded machine (CI runs tests in parallel) gets the same training as a quiet one."""

    def __init__(self, steps: int):
        self.steps, self.given, self.used, self.seconds = steps, 0, 1.0, 1.0

    def progress(self) -> float:
        return min(1.0, self.given / self.steps)

    @property
    def spent(self) -> bool:
        return self.given >= self.steps

    @contextlib.contextmanager
    def running(self):
        yield self

    def batches(self, loader):
        for batch in loader:
            if self.spent:
                return
            self.given += 1
            yield batch


@pytest.mark.parametrize("optimizer", ["muon", "sgd"])
def test_the_recipe_learns_an_easy_task(optimizer):
    """Ten classes told apart by colour, with noise: 128 steps (8 epochs) of the recipe's training learn them."""
    torch.set_num_threads(1)  # CI runs two test processes on two cores
    g = torch.Generator().manual_seed(0)
    palette = torch.randint(30, 226, (10, 3), generator=g)

    def make(n):
        y = torch.randint(0, 10, (n,), generator=g)
        x = palette[y].view(n, 3, 1, 1) + torch.randint(-25, 26, (n, 3, 32, 32), generator=g)
        return x.clamp(0, 255).to(torch.uint8), y

    hyp = {**bench.CPU, **(bench.SGD_CPU if optimizer == "sgd" else {}), "optimizer": optimizer,
           "widths": (8, 16, 16), "batch_size": 64, "whitening": True, "alternating_flips": True}
    r = bench.train_for_time((make(1024), make(500)), hyp, seed=0, clock=StepClock(128))
    assert r["steps"] == 128 and r["epochs"] == 8.0
    assert r["tta_accuracy"] > 0.8, r  # chance is 0.1; measured 1.0 with Muon, 0.91 with SGD
