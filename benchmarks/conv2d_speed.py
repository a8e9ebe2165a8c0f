"""How fast is lesson 03's im2col convolution? Loop conv2d, conv2d_fast and F.conv2d, timed in one process.

    python benchmarks/conv2d_speed.py

The NumPy implementations are the reference solutions, loaded from
solutions/03_padding_and_stride/03_padding_and_stride.ipynb (not copied here). The
course's goal (COURSE_SPEC.md, "Performance"): conv2d_fast at most 3x F.conv2d's time on
this layer. Times are the best of REPEATS runs; on a shared machine, compare the ratios.
This is a benchmark to read, not a test: it never fails.
"""

import os
import platform
import time

import numpy as np
import torch
import torch.nn.functional as F
from solution_loader import load_solutions

# ----------------------------------------------------------------------------- settings
LESSON = "03_padding_and_stride"
X_SHAPE = (64, 16, 32, 32)   # (N, C, H, W)
W_SHAPE = (32, 16, 3, 3)     # (F, C, kh, kw)
PADDING = 1
STRIDE = 1
DTYPE = np.float32
REPEATS = 5                  # best of this many runs (the loop version: LOOP_REPEATS)
LOOP_REPEATS = 2
SEED = 0


def best_time(fn, repeats):
    fn()  # warm-up: first-call allocations, thread pools
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    solutions = load_solutions(LESSON)
    conv2d, conv2d_fast = solutions["conv2d"], solutions["conv2d_fast"]
    rng = np.random.default_rng(SEED)
    x = rng.standard_normal(X_SHAPE).astype(DTYPE)
    w = rng.standard_normal(W_SHAPE).astype(DTYPE)
    b = rng.standard_normal(W_SHAPE[0]).astype(DTYPE)
    xt, wt, bt = (torch.from_numpy(a) for a in (x, w, b))

    def run_torch():
        with torch.no_grad():
            return F.conv2d(xt, wt, bt, stride=STRIDE, padding=PADDING)

    expected = run_torch().numpy()
    for name, fn in [("conv2d (loops)", conv2d), ("conv2d_fast", conv2d_fast)]:
        error = np.abs(fn(x, w, b, stride=STRIDE, padding=PADDING) - expected).max()
        assert error < 1e-3, f"{name} disagrees with F.conv2d: max error {error}"

    t_loop = best_time(lambda: conv2d(x, w, b, stride=STRIDE, padding=PADDING), LOOP_REPEATS)
    t_fast = best_time(lambda: conv2d_fast(x, w, b, stride=STRIDE, padding=PADDING), REPEATS)
    t_torch = best_time(run_torch, REPEATS)

    print(f"x {X_SHAPE}, w {W_SHAPE}, stride {STRIDE}, padding {PADDING}, {np.dtype(DTYPE).name}")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__} ({torch.get_num_threads()} threads), numpy {np.__version__}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'implementation':<16} {'best ms':>9}")
    for name, seconds in [("conv2d (loops)", t_loop), ("conv2d_fast", t_fast), ("F.conv2d", t_torch)]:
        print(f"{name:<16} {seconds * 1e3:9.1f}")
    print(f"loop / fast    = {t_loop / t_fast:6.1f}x")
    print(f"fast / F.conv2d = {t_fast / t_torch:6.2f}x   (goal: at most 3x)")


if __name__ == "__main__":
    main()
