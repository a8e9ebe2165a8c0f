"""Lesson 04: the tests accept every correct implementation and reject plausible wrong ones.

Each mutant is a mistake learners make; each must fail its function's hidden tests
(the ones that decide the grade). Each alternative is a different correct way to
write the function; it must pass every test cell of the lesson.
"""


from tests.notebook_runner import run_tests

LESSON = "04_pooling"

_PAIR = '''
def _pair(v):
    return (int(v), int(v)) if isinstance(v, (int, np.integer)) else (int(v[0]), int(v[1]))
'''

ALTERNATIVES = {
    "loops over output positions": {
        "max_pool2d": '''
import numpy as np
''' + _PAIR + '''
def max_pool2d(x, kernel_size, stride=None, padding=0):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    ph, pw = _pair(padding)
    if ph > kh // 2:
        raise ValueError(f"padding {ph} > half of kernel height {kh}")
    if pw > kw // 2:
        raise ValueError(f"padding {pw} > half of kernel width {kw}")
    N, C, H, W = x.shape
    xp = np.full((N, C, H + 2 * ph, W + 2 * pw), -np.inf, dtype=x.dtype)
    xp[:, :, ph:ph + H, pw:pw + W] = x
    oh, ow = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
    out = np.empty((N, C, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3))
    return out
''',
        "avg_pool2d": '''
import numpy as np
''' + _PAIR + '''
def avg_pool2d(x, kernel_size, stride=None):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    N, C, H, W = x.shape
    oh, ow = (H - kh) // sh + 1, (W - kw) // sw + 1
    out = np.zeros((N, C, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].sum(axis=(2, 3)) / (kh * kw)
    return out
''',
        "global_avg_pool2d": '''
def global_avg_pool2d(x):
    N, C, H, W = x.shape
    return x.reshape(N, C, H * W).sum(axis=2) / (H * W)
''',
        "conv1x1": '''
import numpy as np
def conv1x1(x, w, b=None):
    out = (x.transpose(0, 2, 3, 1) @ w.T).transpose(0, 3, 1, 2)
    return out if b is None else out + b.reshape(1, -1, 1, 1)
''',
        "max_pool2d_backward": '''
import numpy as np
''' + _PAIR + '''
def max_pool2d_backward(dout, x, kernel_size, stride=None):
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(kernel_size if stride is None else stride)
    dx = np.zeros_like(x)
    N, C, oh, ow = dout.shape
    for i in range(oh):
        for j in range(ow):
            win = x[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            mask = win == win.max(axis=(2, 3), keepdims=True)
            dx[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += mask * dout[:, :, i, j][:, :, None, None]
    return dx
''',
    },
    "vectorised: loops over kernel offsets, np.add.at": {
        "max_pool2d": '''
import numpy as np
def max_pool2d(x, kernel_size, stride=None, padding=0):
    k = np.broadcast_to(kernel_size, 2)
    s = np.broadcast_to(k if stride is None else stride, 2)
    p = np.broadcast_to(padding, 2)
    if (p > k // 2).any():
        raise ValueError("padding %s exceeds kernel_size %s // 2" % (tuple(p), tuple(k)))
    xp = np.pad(x, [(0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])], mode="constant", constant_values=-np.inf)
    oh = (xp.shape[2] - k[0]) // s[0] + 1
    ow = (xp.shape[3] - k[1]) // s[1] + 1
    out = np.full(x.shape[:2] + (oh, ow), -np.inf, dtype=x.dtype)
    for a in range(k[0]):
        for b in range(k[1]):
            out = np.maximum(out, xp[:, :, a:a + s[0] * (oh - 1) + 1:s[0], b:b + s[1] * (ow - 1) + 1:s[1]])
    return out
''',
        "avg_pool2d": '''
import numpy as np
def avg_pool2d(x, kernel_size, stride=None):
    k = np.broadcast_to(kernel_size, 2)
    s = np.broadcast_to(k if stride is None else stride, 2)
    oh = (x.shape[2] - k[0]) // s[0] + 1
    ow = (x.shape[3] - k[1]) // s[1] + 1
    total = np.zeros(x.shape[:2] + (oh, ow), dtype=x.dtype)
    for a in range(k[0]):
        for b in range(k[1]):
            total += x[:, :, a:a + s[0] * (oh - 1) + 1:s[0], b:b + s[1] * (ow - 1) + 1:s[1]]
    return total / x.dtype.type(k[0] * k[1])
''',
        "global_avg_pool2d": '''
import numpy as np
def global_avg_pool2d(x):
    return np.mean(np.mean(x, axis=3), axis=2)
''',
        "conv1x1": '''
import numpy as np
def conv1x1(x, w, b=None):
    N, C, H, W = x.shape
    out = np.tensordot(w, x, axes=([1], [1])).transpose(1, 0, 2, 3)
    if b is not None:
        out += b[:, None, None]
    return np.ascontiguousarray(out)
''',
        "max_pool2d_backward": '''
import numpy as np
def max_pool2d_backward(dout, x, kernel_size, stride=None):
    kh, kw = (kernel_size, kernel_size) if np.isscalar(kernel_size) else kernel_size
    sh, sw = (kh, kw) if stride is None else ((stride, stride) if np.isscalar(stride) else stride)
    N, C, oh, ow = dout.shape
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    arg = win.reshape(N, C, oh, ow, kh * kw).argmax(axis=-1)
    rows = np.arange(oh)[None, None, :, None] * sh + arg // kw
    cols = np.arange(ow)[None, None, None, :] * sw + arg % kw
    n = np.arange(N)[:, None, None, None]
    c = np.arange(C)[None, :, None, None]
    dx = np.zeros_like(x)
    np.add.at(dx, (np.broadcast_to(n, arg.shape), np.broadcast_to(c, arg.shape), rows, cols), dout)
    return dx
''',
    },
}

MUTANTS = {
    "max_pool2d": {
        "ceil mode instead of floor": '''
import numpy as np
import math
def max_pool2d(x, kernel_size, stride=None, padding=0):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    p = padding if isinstance(padding, tuple) else (padding, padding)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding {p} too large for kernel {k}")
    N, C, H, W = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0] + k[0]), (p[1], p[1] + k[1])), constant_values=-np.inf)
    oh = math.ceil((H + 2 * p[0] - k[0]) / s[0]) + 1
    ow = math.ceil((W + 2 * p[1] - k[1]) / s[1]) + 1
    out = np.empty((N, C, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = xp[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].max(axis=(2, 3))
    return out
''',
        "pads with 0 instead of -inf": '''
import numpy as np
def max_pool2d(x, kernel_size, stride=None, padding=0):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    p = padding if isinstance(padding, tuple) else (padding, padding)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding {p} too large for kernel {k}")
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    win = np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
    return win.max(axis=(4, 5))
''',
        "stride ignored (always 1)": '''
import numpy as np
def max_pool2d(x, kernel_size, stride=None, padding=0):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    p = padding if isinstance(padding, tuple) else (padding, padding)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding {p} too large for kernel {k}")
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3)).max(axis=(4, 5))
''',
        "stride defaults to 1 instead of kernel_size": '''
import numpy as np
def max_pool2d(x, kernel_size, stride=None, padding=0):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = (1, 1) if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    p = padding if isinstance(padding, tuple) else (padding, padding)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding {p} too large for kernel {k}")
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]].max(axis=(4, 5))
''',
        "padding applied on one side only": '''
import numpy as np
def max_pool2d(x, kernel_size, stride=None, padding=0):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    p = padding if isinstance(padding, tuple) else (padding, padding)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding {p} too large for kernel {k}")
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], 0), (p[1], 0)), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]].max(axis=(4, 5))
''',
        "no ValueError for too much padding": '''
import numpy as np
def max_pool2d(x, kernel_size, stride=None, padding=0):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    p = padding if isinstance(padding, tuple) else (padding, padding)
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]].max(axis=(4, 5))
''',
        "too strict: rejects padding == kernel // 2": '''
import numpy as np
def max_pool2d(x, kernel_size, stride=None, padding=0):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    p = padding if isinstance(padding, tuple) else (padding, padding)
    if (p[0] and p[0] >= k[0] / 2) or (p[1] and p[1] >= k[1] / 2):
        raise ValueError(f"padding {p} too large for kernel {k}")
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]].max(axis=(4, 5))
''',
        "kernel pair read as (kw, kh)": '''
import numpy as np
def max_pool2d(x, kernel_size, stride=None, padding=0):
    k = kernel_size[::-1] if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    p = padding if isinstance(padding, tuple) else (padding, padding)
    if p[0] > k[0] // 2 or p[1] > k[1] // 2:
        raise ValueError(f"padding {p} too large for kernel {k}")
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])), constant_values=-np.inf)
    return np.lib.stride_tricks.sliding_window_view(xp, k, axis=(2, 3))[:, :, ::s[0], ::s[1]].max(axis=(4, 5))
''',
    },
    "avg_pool2d": {
        "ceil mode instead of floor (partial windows averaged)": '''
import numpy as np
import math
def avg_pool2d(x, kernel_size, stride=None):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    N, C, H, W = x.shape
    oh, ow = math.ceil((H - k[0]) / s[0]) + 1, math.ceil((W - k[1]) / s[1]) + 1
    out = np.empty((N, C, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = x[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]].mean(axis=(2, 3))
    return out
''',
        "stride ignored (always 1)": '''
import numpy as np
def avg_pool2d(x, kernel_size, stride=None):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    return np.lib.stride_tricks.sliding_window_view(x, k, axis=(2, 3)).mean(axis=(4, 5))
''',
        "divides by kh * kh (wrong count for non-square windows)": '''
import numpy as np
def avg_pool2d(x, kernel_size, stride=None):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    win = np.lib.stride_tricks.sliding_window_view(x, k, axis=(2, 3))[:, :, ::s[0], ::s[1]]
    return win.sum(axis=(4, 5)) / (k[0] * k[0])
''',
        "window sum instead of mean": '''
import numpy as np
def avg_pool2d(x, kernel_size, stride=None):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    return np.lib.stride_tricks.sliding_window_view(x, k, axis=(2, 3))[:, :, ::s[0], ::s[1]].sum(axis=(4, 5))
''',
        "stride pair read as (sw, sh)": '''
import numpy as np
def avg_pool2d(x, kernel_size, stride=None):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride[::-1] if isinstance(stride, tuple) else (stride, stride))
    return np.lib.stride_tricks.sliding_window_view(x, k, axis=(2, 3))[:, :, ::s[0], ::s[1]].mean(axis=(4, 5))
''',
    },
    "global_avg_pool2d": {
        "keeps the spatial axes (N, C, 1, 1)": '''
def global_avg_pool2d(x):
    return x.mean(axis=(2, 3), keepdims=True)
''',
        "averages over channels and height": '''
def global_avg_pool2d(x):
    return x.mean(axis=(1, 2))
''',
        "sum instead of mean": '''
def global_avg_pool2d(x):
    return x.sum(axis=(2, 3))
''',
        "global max instead of mean": '''
def global_avg_pool2d(x):
    return x.max(axis=(2, 3))
''',
    },
    "conv1x1": {
        "w transposed (only works when F == C)": '''
import numpy as np
def conv1x1(x, w, b=None):
    w = w.T if w.shape[0] == w.shape[1] else w
    out = np.einsum("fc,nchw->nfhw", w, x)
    return out if b is None else out + b[None, :, None, None]
''',
        "forgotten bias": '''
import numpy as np
def conv1x1(x, w, b=None):
    return np.einsum("fc,nchw->nfhw", w, x)
''',
        "channels-last output not moved back (N, H, W, F)": '''
import numpy as np
def conv1x1(x, w, b=None):
    out = x.transpose(0, 2, 3, 1) @ w.T
    return out if b is None else out + b
''',
        "bias broadcast along the last axis (out + b: right only by accident)": '''
import numpy as np
def conv1x1(x, w, b=None):
    out = np.einsum("fc,nchw->nfhw", w, x)
    if b is not None:
        out = out + (b[None, :, None, None] if out.shape[-1] != len(b) else b)
    return out
''',
    },
    "max_pool2d_backward": {
        "gradient spread over the whole window": '''
import numpy as np
def max_pool2d_backward(dout, x, kernel_size, stride=None):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    dx = np.zeros_like(x)
    for i in range(dout.shape[2]):
        for j in range(dout.shape[3]):
            dx[:, :, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]] += dout[:, :, i:i + 1, j:j + 1] / (k[0] * k[1])
    return dx
''',
        "overwrites instead of accumulating (overlapping windows)": '''
import numpy as np
def max_pool2d_backward(dout, x, kernel_size, stride=None):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    win = x[n, c, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
                    a, b = np.unravel_index(np.argmax(win), win.shape)
                    dx[n, c, i * s[0] + a, j * s[1] + b] = dout[n, c, i, j]
    return dx
''',
        "stride ignored (assumes stride == kernel_size)": '''
import numpy as np
def max_pool2d_backward(dout, x, kernel_size, stride=None):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    win = x[n, c, i * k[0]:i * k[0] + k[0], j * k[1]:j * k[1] + k[1]]
                    if win.size == 0:
                        continue
                    a, b = np.unravel_index(np.argmax(win), win.shape)
                    dx[n, c, i * k[0] + a, j * k[1] + b] += dout[n, c, i, j]
    return dx
''',
        "gradient to the arg-min": '''
import numpy as np
def max_pool2d_backward(dout, x, kernel_size, stride=None):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    win = x[n, c, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
                    a, b = np.unravel_index(np.argmin(win), win.shape)
                    dx[n, c, i * s[0] + a, j * s[1] + b] += dout[n, c, i, j]
    return dx
''',
        "arg-max unravelled with the kernel height (a = idx // kh)": '''
import numpy as np
def max_pool2d_backward(dout, x, kernel_size, stride=None):
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size, kernel_size)
    s = k if stride is None else (stride if isinstance(stride, tuple) else (stride, stride))
    dx = np.zeros_like(x)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(dout.shape[2]):
                for j in range(dout.shape[3]):
                    win = x[n, c, i * s[0]:i * s[0] + k[0], j * s[1]:j * s[1] + k[1]]
                    idx = int(np.argmax(win))
                    a, b = min(idx // k[0], k[0] - 1), min(idx % k[0], k[1] - 1)
                    dx[n, c, i * s[0] + a, j * s[1] + b] += dout[n, c, i, j]
    return dx
''',
    },
}





def test_failure_messages_teach():
    """Zero padding and overwriting gradients are reported with the likely cause."""
    results = run_tests(LESSON, {"max_pool2d": MUTANTS["max_pool2d"]["pads with 0 instead of -inf"]})
    assert "-inf" in results["test_max_pool2d"]
    results = run_tests(LESSON, {"max_pool2d_backward":
                                 MUTANTS["max_pool2d_backward"]["overwrites instead of accumulating (overlapping windows)"]})
    assert "ADD" in results["test_max_pool2d_backward"]
    results = run_tests(LESSON, {"max_pool2d": MUTANTS["max_pool2d"]["stride defaults to 1 instead of kernel_size"]})
    assert "stride defaults to kernel_size" in results["test_max_pool2d"]


def test_visible_tests_catch_the_common_mistakes():
    """Each of these mistakes fails a visible test (all a self-learner sees), with a hint at the cause."""
    for function, label, words in [
            ("max_pool2d", "padding applied on one side only", "AND p at the bottom"),
            ("avg_pool2d", "ceil mode instead of floor (partial windows averaged)", "not averaged in part"),
            ("conv1x1", "bias broadcast along the last axis (out + b: right only by accident)", "output CHANNEL f"),
            ("max_pool2d_backward", "arg-max unravelled with the kernel height (a = idx // kh)", "idx // kw")]:
        results = run_tests(LESSON, {function: MUTANTS[function][label]})
        assert words in (results[f"test_{function}"] or ""), (label, results[f"test_{function}"])
