"""PyTorch as the oracle for NumPy exercises: NumPy arrays in, NumPy arrays out.

Tests compare a learner's NumPy function with ``torch.nn.functional`` on random
inputs. ``numpy_reference(F.conv2d)`` turns the torch function into one that
takes and returns ndarrays, keeping the input's dtype (float64 stays float64).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import torch


def to_torch(value):
    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, np.ndarray) for v in value):
        return type(value)(to_torch(v) for v in value)
    return value


def to_numpy(value):
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy().copy()
    if isinstance(value, tuple):
        return tuple(to_numpy(v) for v in value)
    if isinstance(value, list):
        return [to_numpy(v) for v in value]
    return value


def numpy_reference(torch_fn: Callable) -> Callable:
    """Wrap ``torch_fn`` so that it accepts and returns NumPy arrays."""

    @functools.wraps(torch_fn)
    def reference(*args, **kwargs):
        # Test inputs are small: one thread avoids the cost of waking a thread pool on a
        # busy machine (several test processes share two cores in CI).
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                out = torch_fn(*(to_torch(a) for a in args), **{k: to_torch(v) for k, v in kwargs.items()})
        finally:
            torch.set_num_threads(threads)
        return to_numpy(out)

    return reference


def random_array(rng: np.random.Generator, shape, dtype=np.float64) -> np.ndarray:
    """Standard-normal entries of the given shape and dtype."""
    return rng.standard_normal(shape).astype(dtype)
