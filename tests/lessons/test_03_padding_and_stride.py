"""Lesson 03: the tests accept every correct implementation and reject plausible wrong ones.

Each mutant is a mistake learners make; each must fail its function's hidden tests
(the ones that decide the grade). ``SPEED_MUTANTS`` are correct but slow versions of
``conv2d_fast`` (one of them fast only on inputs it has seen before): they pass the correctness
tests and must fail ``test_conv2d_fast_speed``.
Each alternative is a different correct way to write the functions; it must pass every
test cell of the lesson, the speed test included.
"""

import pytest

from tests.notebook_runner import results_for, run_tests

LESSON = "03_padding_and_stride"

ALTERNATIVES = {
    "counting loops, np.pad, loops over kernel offsets, einsum windows, backward as convolutions": {
        "conv_output_size": '''
def conv_output_size(size, kernel_size, padding=0, stride=1, dilation=1):
    checks_ = {"size": (size, 1), "kernel_size": (kernel_size, 1), "padding": (padding, 0),
               "stride": (stride, 1), "dilation": (dilation, 1)}
    for name, (value, low) in checks_.items():
        if value < low:
            raise ValueError("bad %s: %r (must be >= %d)" % (name, value, low))
    span = (kernel_size - 1) * dilation + 1
    count, start = 0, 0
    while start + span <= size + 2 * padding:   # count the windows that fit
        count += 1
        start += stride
    if count == 0:
        raise ValueError(f"kernel_size {kernel_size} (dilation {dilation}) does not fit in size {size} "
                         f"with padding {padding}")
    return count
''',
        "same_padding": '''
def same_padding(kernel_size, dilation=1):
    for p in range(0, dilation * kernel_size + 1):   # search: the p that keeps 20 pixels at 20
        if conv_output_size(20 + dilation * kernel_size, kernel_size, p, 1, dilation) == 20 + dilation * kernel_size:
            return p
    raise ValueError(f"kernel_size {kernel_size} with dilation {dilation} has no symmetric same padding")
''',
        "pad2d": '''
import numpy as np
def pad2d(x, padding):
    ph, pw = (padding, padding) if isinstance(padding, int) else tuple(padding)
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="constant")
''',
        "conv2d": '''
import numpy as np
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    sh, sw = as_pair(stride)
    dh, dw = as_pair(dilation)
    xp = pad2d(x, padding)
    N, C, H, W = xp.shape
    F, _, kh, kw = w.shape
    oh = (H - dh * (kh - 1) - 1) // sh + 1
    ow = (W - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((N, F, oh, ow), dtype=x.dtype)
    for a in range(kh):          # loop over kernel taps, vectorised over positions
        for e in range(kw):
            patch = xp[:, :, a * dh:a * dh + sh * (oh - 1) + 1:sh, e * dw:e * dw + sw * (ow - 1) + 1:sw]
            out += np.einsum("nchw,fc->nfhw", patch, w[:, :, a, e])
    if b is not None:
        out += b.reshape(1, -1, 1, 1)
    return out
''',
        "conv2d_fast": '''
import numpy as np
def conv2d_fast(x, w, b=None, stride=1, padding=0):
    sh, sw = as_pair(stride)
    xp = pad2d(x, padding)
    F, C, kh, kw = w.shape
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    out = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))      # (N, oh, ow, F)
    if b is not None:
        out = out + b
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
''',
        "conv2d_backward": '''
import numpy as np
def conv2d_backward(dout, x, w, stride=1, padding=0):
    # both gradients as convolutions, with the lesson's own conv2d
    (s1, s2), (p1, p2) = as_pair(stride), as_pair(padding)
    F, C, kh, kw = w.shape
    xp = pad2d(x, (p1, p2))
    dw = conv2d(xp.transpose(1, 0, 2, 3), dout.transpose(1, 0, 2, 3), dilation=(s1, s2))
    dw = dw.transpose(1, 0, 2, 3)[:, :, :kh, :kw]
    N, _, oh, ow = dout.shape
    dil = np.zeros((N, F, s1 * (oh - 1) + 1, s2 * (ow - 1) + 1), dtype=dout.dtype)
    dil[:, :, ::s1, ::s2] = dout
    full = conv2d(dil, w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3), padding=(kh - 1, kw - 1))
    dxp = np.zeros_like(xp)
    dxp[:, :, :full.shape[2], :full.shape[3]] = full
    dx = dxp[:, :, p1:p1 + x.shape[2], p2:p2 + x.shape[3]]
    return dx, np.ascontiguousarray(dw), dout.sum(axis=(0, 2, 3))
''',
    },
    "closed forms, zeros + slices, loops over positions, kernel-offset matmuls, backward loops": {
        "conv_output_size": '''
import math
def conv_output_size(size, kernel_size, padding=0, stride=1, dilation=1):
    if min(size, kernel_size, stride, dilation) < 1 or padding < 0:
        raise ValueError(f"invalid arguments: size={size}, kernel_size={kernel_size}, padding={padding}, "
                         f"stride={stride}, dilation={dilation}")
    out = math.floor((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1
    if out < 1:
        raise ValueError(f"output size {out} for size={size}, kernel_size={kernel_size}, padding={padding}")
    return int(out)
''',
        "same_padding": '''
def same_padding(kernel_size, dilation=1):
    q, r = divmod(dilation * (kernel_size - 1), 2)
    if r:
        raise ValueError("kernel_size=%d, dilation=%d: no symmetric padding" % (kernel_size, dilation))
    return q
''',
        "pad2d": '''
import numpy as np
def pad2d(x, padding):
    if isinstance(padding, int):
        padding = (padding, padding)
    ph, pw = padding
    N, C, H, W = x.shape
    out = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
    out[:, :, ph:ph + H, pw:pw + W] = x.copy()
    return out
''',
        "conv2d": '''
import numpy as np
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    sh, sw = as_pair(stride)
    ph, pw = as_pair(padding)
    dh, dw = as_pair(dilation)
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    oh = conv_output_size(H, kh, ph, sh, dh)
    ow = conv_output_size(W, kw, pw, sw, dw)
    xp = pad2d(x, (ph, pw))
    out = np.empty((N, F, oh, ow), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for i in range(oh):
                for j in range(ow):
                    r, c = i * sh, j * sw
                    win = xp[n, :, r:r + dh * kh:dh, c:c + dw * kw:dw][:, :kh, :kw]
                    out[n, f, i, j] = np.sum(win * w[f]) + (b[f] if b is not None else 0)
    return out
''',
        "conv2d_fast": '''
import numpy as np
def conv2d_fast(x, w, b=None, stride=1, padding=0):
    # a short loop over the kh*kw kernel offsets, each one matrix product over all positions
    sh, sw = as_pair(stride)
    ph, pw = as_pair(padding)
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    oh = (H + 2 * ph - kh) // sh + 1
    ow = (W + 2 * pw - kw) // sw + 1
    xp = pad2d(x, (ph, pw))
    out = np.zeros((F, N * oh * ow), dtype=x.dtype)
    for a in range(kh):
        for e in range(kw):
            patch = xp[:, :, a:a + sh * (oh - 1) + 1:sh, e:e + sw * (ow - 1) + 1:sw]   # (N, C, oh, ow)
            out += w[:, :, a, e] @ patch.transpose(1, 0, 2, 3).reshape(C, -1)
    if b is not None:
        out += b[:, None]
    return out.reshape(F, N, oh, ow).transpose(1, 0, 2, 3)
''',
        "conv2d_backward": '''
import numpy as np
def conv2d_backward(dout, x, w, stride=1, padding=0):
    sh, sw = as_pair(stride)
    ph, pw = as_pair(padding)
    xp = pad2d(x, (ph, pw))
    F, C, kh, kw = w.shape
    N, _, oh, ow = dout.shape
    dxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    for i in range(oh):
        for j in range(ow):
            win = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]             # (N, C, kh, kw)
            g = dout[:, :, i, j]                                               # (N, F)
            dw += np.tensordot(g, win, axes=([0], [0]))
            dxp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw] += np.tensordot(g, w, axes=([1], [0]))
    db = np.sum(dout, axis=(0, 2, 3))
    return dxp[:, :, ph:xp.shape[2] - ph, pw:xp.shape[3] - pw], dw, db
''',
    },
}

_FAST_TEMPLATE = '''
import numpy as np
def conv2d_fast(x, w, b=None, stride=1, padding=0):
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    n, c, h, width = x.shape
    f, _, kh, kw = w.shape
    out_h, out_w = (h + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1
    xp = np.zeros((n, h + 2 * ph, width + 2 * pw, c), dtype=x.dtype)
    xp[:, ph:ph + h, pw:pw + width, :] = x.transpose(0, 2, 3, 1)
    windows = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    cols = windows.transpose(0, 1, 2, 4, 5, 3).reshape(n * out_h * out_w, kh * kw * c)
    out = cols @ WEIGHTS
    if b is not None:
        out += b
    return out.reshape(n, out_h, out_w, f).transpose(0, 3, 1, 2)
'''

MUTANTS = {
    "conv_output_size": {
        "ceil instead of floor": '''
import math
def conv_output_size(size, kernel_size, padding=0, stride=1, dilation=1):
    if min(size, kernel_size, stride, dilation) < 1 or padding < 0:
        raise ValueError(f"size={size} kernel_size={kernel_size} padding={padding} stride={stride} dilation={dilation}")
    out = math.ceil((size + 2 * padding - dilation * (kernel_size - 1) - 1) / stride) + 1
    if out < 1:
        raise ValueError(f"no output for size={size}, kernel_size={kernel_size}")
    return out
''',
        "padding counted once instead of twice": '''
def conv_output_size(size, kernel_size, padding=0, stride=1, dilation=1):
    if min(size, kernel_size, stride, dilation) < 1 or padding < 0:
        raise ValueError(f"size={size} kernel_size={kernel_size} padding={padding} stride={stride} dilation={dilation}")
    out = (size + padding - dilation * (kernel_size - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"no output for size={size}, kernel_size={kernel_size}")
    return out
''',
        "dilation ignored in the size formula": '''
def conv_output_size(size, kernel_size, padding=0, stride=1, dilation=1):
    if min(size, kernel_size, stride, dilation) < 1 or padding < 0:
        raise ValueError(f"size={size} kernel_size={kernel_size} padding={padding} stride={stride} dilation={dilation}")
    out = (size + 2 * padding - kernel_size) // stride + 1
    if out < 1:
        raise ValueError(f"no output for size={size}, kernel_size={kernel_size}")
    return out
''',
        "effective kernel size d*k instead of d*(k-1)+1": '''
def conv_output_size(size, kernel_size, padding=0, stride=1, dilation=1):
    if min(size, kernel_size, stride, dilation) < 1 or padding < 0:
        raise ValueError(f"size={size} kernel_size={kernel_size} padding={padding} stride={stride} dilation={dilation}")
    out = (size + 2 * padding - dilation * kernel_size) // stride + 1
    if out < 1:
        raise ValueError(f"no output for size={size}, kernel_size={kernel_size}")
    return out
''',
        "true division: returns a float": '''
def conv_output_size(size, kernel_size, padding=0, stride=1, dilation=1):
    if min(size, kernel_size, stride, dilation) < 1 or padding < 0:
        raise ValueError(f"size={size} kernel_size={kernel_size} padding={padding} stride={stride} dilation={dilation}")
    out = (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1.0
    if out < 1:
        raise ValueError(f"no output for size={size}, kernel_size={kernel_size}")
    return out
''',
        "no ValueError when the kernel does not fit (returns 0 or less)": '''
def conv_output_size(size, kernel_size, padding=0, stride=1, dilation=1):
    if min(size, kernel_size, stride, dilation) < 1 or padding < 0:
        raise ValueError(f"size={size} kernel_size={kernel_size} padding={padding} stride={stride} dilation={dilation}")
    return (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
''',
        "argument checks missing (stride 0 divides by zero)": '''
def conv_output_size(size, kernel_size, padding=0, stride=1, dilation=1):
    out = (size + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    if out < 1:
        raise ValueError(f"no output for size={size}, kernel_size={kernel_size}")
    return out
''',
    },
    "same_padding": {
        "k // 2 (no dilation, no error for even kernels)": '''
def same_padding(kernel_size, dilation=1):
    return kernel_size // 2
''',
        "dilation ignored": '''
def same_padding(kernel_size, dilation=1):
    if (kernel_size - 1) % 2:
        raise ValueError(f"kernel_size={kernel_size}, dilation={dilation}: even kernel")
    return (kernel_size - 1) // 2
''',
        "floor instead of ValueError for an odd total": '''
def same_padding(kernel_size, dilation=1):
    return dilation * (kernel_size - 1) // 2
''',
        "d*k // 2 (effective size confused)": '''
def same_padding(kernel_size, dilation=1):
    if dilation * (kernel_size - 1) % 2:
        raise ValueError(f"kernel_size={kernel_size}, dilation={dilation}: odd")
    return dilation * kernel_size // 2
''',
        "error only for even kernels (misses dilation 2 with even k)": '''
def same_padding(kernel_size, dilation=1):
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size={kernel_size}, dilation={dilation}: even kernel")
    return dilation * (kernel_size - 1) // 2
''',
    },
    "pad2d": {
        "pads the batch and channel axes too": '''
import numpy as np
def pad2d(x, padding):
    ph, pw = as_pair(padding)
    return np.pad(x, ph) if ph == pw else np.pad(x, ((ph, ph), (ph, ph), (ph, ph), (pw, pw)))
''',
        "pads one side only (bottom/right)": '''
import numpy as np
def pad2d(x, padding):
    ph, pw = as_pair(padding)
    return np.pad(x, ((0, 0), (0, 0), (0, 2 * ph), (0, 2 * pw)))
''',
        "(ph, pw) swapped": '''
import numpy as np
def pad2d(x, padding):
    ph, pw = as_pair(padding)
    return np.pad(x, ((0, 0), (0, 0), (pw, pw), (ph, ph)))
''',
        "edge padding instead of zeros": '''
import numpy as np
def pad2d(x, padding):
    ph, pw = as_pair(padding)
    return np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), mode="edge")
''',
        "always float64": '''
import numpy as np
def pad2d(x, padding):
    ph, pw = as_pair(padding)
    out = np.zeros(x.shape[:2] + (x.shape[2] + 2 * ph, x.shape[3] + 2 * pw))
    out[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]] = x
    return out
''',
    },
    "conv2d": {
        "stride ignored on the width axis": '''
import numpy as np
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    (sh, _), (ph, pw), (dh, dw) = as_pair(stride), as_pair(padding), as_pair(dilation)
    sw = sh
    f, c, kh, kw = w.shape
    out_h = conv_output_size(x.shape[2], kh, ph, sh, dh)
    out_w = conv_output_size(x.shape[3], kw, pw, sw, dw)
    xp = pad2d(x, (ph, pw))
    out = np.zeros((x.shape[0], f, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            win = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, :, i, j] = np.tensordot(win, w, axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b[None, :, None, None]
''',
        "dilation ignored when reading the window": '''
import numpy as np
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    (sh, sw), (ph, pw), (dh, dw) = as_pair(stride), as_pair(padding), as_pair(dilation)
    f, c, kh, kw = w.shape
    out_h = conv_output_size(x.shape[2], kh, ph, sh, dh)
    out_w = conv_output_size(x.shape[3], kw, pw, sw, dw)
    xp = pad2d(x, (ph, pw))
    out = np.zeros((x.shape[0], f, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            win = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw]
            out[:, :, i, j] = np.tensordot(win, w, axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b[None, :, None, None]
''',
        "padding only at the top and left": '''
import numpy as np
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    (sh, sw), (ph, pw), (dh, dw) = as_pair(stride), as_pair(padding), as_pair(dilation)
    f, c, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (ph, 0), (pw, 0)))
    out_h = conv_output_size(xp.shape[2], kh, 0, sh, dh)
    out_w = conv_output_size(xp.shape[3], kw, 0, sw, dw)
    out = np.zeros((x.shape[0], f, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            win = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, :, i, j] = np.tensordot(win, w, axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b[None, :, None, None]
''',
        "window step is the stride, taps read with the stride instead of the dilation": '''
import numpy as np
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    (sh, sw), (ph, pw), (dh, dw) = as_pair(stride), as_pair(padding), as_pair(dilation)
    f, c, kh, kw = w.shape
    out_h = conv_output_size(x.shape[2], kh, ph, sh, dh)
    out_w = conv_output_size(x.shape[3], kw, pw, sw, dw)
    xp = pad2d(x, (ph, pw))
    xp = np.pad(xp, ((0, 0), (0, 0), (0, 10), (0, 10)))
    out = np.zeros((x.shape[0], f, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            win = xp[:, :, i * sh:i * sh + sh * (kh - 1) + 1:sh, j * sw:j * sw + sw * (kw - 1) + 1:sw]
            out[:, :, i, j] = np.tensordot(win, w, axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b[None, :, None, None]
''',
        "forgotten bias": '''
import numpy as np
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    (sh, sw), (ph, pw), (dh, dw) = as_pair(stride), as_pair(padding), as_pair(dilation)
    f, c, kh, kw = w.shape
    out_h = conv_output_size(x.shape[2], kh, ph, sh, dh)
    out_w = conv_output_size(x.shape[3], kw, pw, sw, dw)
    xp = pad2d(x, (ph, pw))
    out = np.zeros((x.shape[0], f, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            win = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, :, i, j] = np.tensordot(win, w, axes=([1, 2, 3], [1, 2, 3]))
    return out
''',
        "kernel flipped (true convolution)": '''
import numpy as np
def conv2d(x, w, b=None, stride=1, padding=0, dilation=1):
    (sh, sw), (ph, pw), (dh, dw) = as_pair(stride), as_pair(padding), as_pair(dilation)
    w = w[:, :, ::-1, ::-1]
    f, c, kh, kw = w.shape
    out_h = conv_output_size(x.shape[2], kh, ph, sh, dh)
    out_w = conv_output_size(x.shape[3], kw, pw, sw, dw)
    xp = pad2d(x, (ph, pw))
    out = np.zeros((x.shape[0], f, out_h, out_w), dtype=x.dtype)
    for i in range(out_h):
        for j in range(out_w):
            win = xp[:, :, i * sh:i * sh + dh * (kh - 1) + 1:dh, j * sw:j * sw + dw * (kw - 1) + 1:dw]
            out[:, :, i, j] = np.tensordot(win, w, axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b[None, :, None, None]
''',
    },
    "conv2d_fast": {
        "stride ignored on the height axis": _FAST_TEMPLATE.replace(
            "(sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)",
            "(_, sw), (ph, pw) = as_pair(stride), as_pair(padding)\n    sh = sw").replace(
            "WEIGHTS", "w.transpose(2, 3, 1, 0).reshape(kh * kw * c, f)"),
        "im2col rows ordered (kh, kw, C) but weights flattened as (C, kh, kw)": _FAST_TEMPLATE.replace(
            "WEIGHTS", "w.reshape(f, c * kh * kw).T"),
        "forgotten bias": _FAST_TEMPLATE.replace("WEIGHTS", "w.transpose(2, 3, 1, 0).reshape(kh * kw * c, f)").replace(
            "out += b", "pass"),
        "padding counted once (only top and left)": _FAST_TEMPLATE.replace(
            "WEIGHTS", "w.transpose(2, 3, 1, 0).reshape(kh * kw * c, f)").replace(
            "(h + 2 * ph - kh) // sh + 1, (width + 2 * pw - kw) // sw + 1",
            "(h + ph - kh) // sh + 1, (width + pw - kw) // sw + 1").replace(
            "np.zeros((n, h + 2 * ph, width + 2 * pw, c)", "np.zeros((n, h + ph, width + pw, c)"),
        "always float64 output": _FAST_TEMPLATE.replace(
            "WEIGHTS", "w.transpose(2, 3, 1, 0).reshape(kh * kw * c, f).astype(np.float64)"),
    },
    "conv2d_backward": {
        "stride ignored when scattering dx": '''
import numpy as np
def conv2d_backward(dout, x, w, stride=1, padding=0):
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    kh, kw = w.shape[2:]
    oh, ow = dout.shape[2:]
    xp = pad2d(x, (ph, pw))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    dw = np.tensordot(dout, win, axes=([0, 2, 3], [0, 2, 3]))
    dxp = np.zeros_like(xp)
    for a in range(kh):
        for e in range(kw):
            dxp[:, :, a:a + oh, e:e + ow] += np.einsum("nfij,fc->ncij", dout, w[:, :, a, e])
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dw, dout.sum(axis=(0, 2, 3))
''',
        "padding not removed from dx (gradient of the padded input)": '''
import numpy as np
def conv2d_backward(dout, x, w, stride=1, padding=0):
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    kh, kw = w.shape[2:]
    oh, ow = dout.shape[2:]
    xp = pad2d(x, (ph, pw))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    dw = np.tensordot(dout, win, axes=([0, 2, 3], [0, 2, 3]))
    dxp = np.zeros_like(xp)
    for a in range(kh):
        for e in range(kw):
            dxp[:, :, a:a + sh * oh:sh, e:e + sw * ow:sw] += np.einsum("nfij,fc->ncij", dout, w[:, :, a, e])
    return dxp, dw, dout.sum(axis=(0, 2, 3))
''',
        "padding cropped from the wrong end": '''
import numpy as np
def conv2d_backward(dout, x, w, stride=1, padding=0):
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    kh, kw = w.shape[2:]
    oh, ow = dout.shape[2:]
    xp = pad2d(x, (ph, pw))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    dw = np.tensordot(dout, win, axes=([0, 2, 3], [0, 2, 3]))
    dxp = np.zeros_like(xp)
    for a in range(kh):
        for e in range(kw):
            dxp[:, :, a:a + sh * oh:sh, e:e + sw * ow:sw] += np.einsum("nfij,fc->ncij", dout, w[:, :, a, e])
    return dxp[:, :, :x.shape[2], :x.shape[3]], dw, dout.sum(axis=(0, 2, 3))
''',
        "dw ignores the padding (windows of the unpadded input)": '''
import numpy as np
def conv2d_backward(dout, x, w, stride=1, padding=0):
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    kh, kw = w.shape[2:]
    oh, ow = dout.shape[2:]
    xp = pad2d(x, (ph, pw))
    xq = np.pad(x, ((0, 0), (0, 0), (0, 2 * ph), (0, 2 * pw)))
    win = np.lib.stride_tricks.sliding_window_view(xq, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    dw = np.tensordot(dout, win, axes=([0, 2, 3], [0, 2, 3]))
    dxp = np.zeros_like(xp)
    for a in range(kh):
        for e in range(kw):
            dxp[:, :, a:a + sh * oh:sh, e:e + sw * ow:sw] += np.einsum("nfij,fc->ncij", dout, w[:, :, a, e])
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dw, dout.sum(axis=(0, 2, 3))
''',
        "db summed over the wrong axes": '''
import numpy as np
def conv2d_backward(dout, x, w, stride=1, padding=0):
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    kh, kw = w.shape[2:]
    oh, ow = dout.shape[2:]
    xp = pad2d(x, (ph, pw))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    dw = np.tensordot(dout, win, axes=([0, 2, 3], [0, 2, 3]))
    dxp = np.zeros_like(xp)
    for a in range(kh):
        for e in range(kw):
            dxp[:, :, a:a + sh * oh:sh, e:e + sw * ow:sw] += np.einsum("nfij,fc->ncij", dout, w[:, :, a, e])
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dw, dout.sum(axis=(2, 3))[0]
''',
        "dw not summed over the batch (first image only)": '''
import numpy as np
def conv2d_backward(dout, x, w, stride=1, padding=0):
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    kh, kw = w.shape[2:]
    oh, ow = dout.shape[2:]
    xp = pad2d(x, (ph, pw))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    dw = np.tensordot(dout[0], win[0], axes=([1, 2], [1, 2]))
    dxp = np.zeros_like(xp)
    for a in range(kh):
        for e in range(kw):
            dxp[:, :, a:a + sh * oh:sh, e:e + sw * ow:sw] += np.einsum("nfij,fc->ncij", dout, w[:, :, a, e])
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dw, dout.sum(axis=(0, 2, 3))
''',
        "dw averaged over the batch instead of summed": '''
import numpy as np
def conv2d_backward(dout, x, w, stride=1, padding=0):
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    kh, kw = w.shape[2:]
    oh, ow = dout.shape[2:]
    xp = pad2d(x, (ph, pw))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    dw = np.tensordot(dout, win, axes=([0, 2, 3], [0, 2, 3])) / x.shape[0]
    dxp = np.zeros_like(xp)
    for a in range(kh):
        for e in range(kw):
            dxp[:, :, a:a + sh * oh:sh, e:e + sw * ow:sw] += np.einsum("nfij,fc->ncij", dout, w[:, :, a, e])
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dw, dout.sum(axis=(0, 2, 3))
''',
        "dx uses the flipped kernel": '''
import numpy as np
def conv2d_backward(dout, x, w, stride=1, padding=0):
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    kh, kw = w.shape[2:]
    oh, ow = dout.shape[2:]
    xp = pad2d(x, (ph, pw))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    dw = np.tensordot(dout, win, axes=([0, 2, 3], [0, 2, 3]))
    wf = w[:, :, ::-1, ::-1]
    dxp = np.zeros_like(xp)
    for a in range(kh):
        for e in range(kw):
            dxp[:, :, a:a + sh * oh:sh, e:e + sw * ow:sw] += np.einsum("nfij,fc->ncij", dout, wf[:, :, a, e])
    return dxp[:, :, ph:ph + x.shape[2], pw:pw + x.shape[3]], dw, dout.sum(axis=(0, 2, 3))
''',
    },
}

SPEED_MUTANTS = {
    "correct, but a loop over output positions": '''
import numpy as np
def conv2d_fast(x, w, b=None, stride=1, padding=0):
    (sh, sw), (ph, pw) = as_pair(stride), as_pair(padding)
    f, c, kh, kw = w.shape
    xp = pad2d(x, (ph, pw))
    oh, ow = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    out = np.zeros((x.shape[0], f, oh, ow), dtype=x.dtype)
    for i in range(oh):
        for j in range(ow):
            out[:, :, i, j] = np.tensordot(xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw], w,
                                           axes=([1, 2, 3], [1, 2, 3]))
    return out if b is None else out + b[None, :, None, None]
''',
    "correct, but calls the loop conv2d": '''
def conv2d_fast(x, w, b=None, stride=1, padding=0):
    return conv2d(x, w, b, stride=stride, padding=padding)
''',
    # Issue 14, item 10: this one earned the speed points while the test timed repeated calls on the same arrays.
    "the loop version behind a cache keyed on its inputs": '''
_conv2d_fast_cache = {}
def conv2d_fast(x, w, b=None, stride=1, padding=0):
    key = (x.tobytes(), x.shape, x.dtype.str, w.tobytes(), w.shape, None if b is None else b.tobytes(),
           as_pair(stride), as_pair(padding))
    if key not in _conv2d_fast_cache:
        _conv2d_fast_cache[key] = conv2d(x, w, b, stride=stride, padding=padding)
    return _conv2d_fast_cache[key].copy()
''',
    "the loop version behind a cache keyed on the arrays' identity": '''
_conv2d_fast_cache = {}
def conv2d_fast(x, w, b=None, stride=1, padding=0):
    key = (id(x), id(w), id(b), as_pair(stride), as_pair(padding))
    if key not in _conv2d_fast_cache:
        _conv2d_fast_cache[key] = conv2d(x, w, b, stride=stride, padding=padding)
    return _conv2d_fast_cache[key].copy()
''',
}





@pytest.mark.parametrize("label", sorted(SPEED_MUTANTS))
def test_slow_conv2d_fast_fails_only_the_speed_test(label):
    results = results_for(LESSON, "conv2d_fast", run_tests(LESSON, {"conv2d_fast": SPEED_MUTANTS[label]}))
    assert results["test_conv2d_fast"] is None and results["test_conv2d_fast_hidden"] is None, results
    assert results["test_conv2d_fast_speed"] is not None, f"{label!r} got the speed points: {results}"
    assert "at least 20x faster" in results["test_conv2d_fast_speed"]


def test_failure_messages_teach():
    """Wrong answers are reported with the formula or the likely mistake, not a bare assertion."""
    results = run_tests(LESSON, {"conv_output_size": MUTANTS["conv_output_size"]["ceil instead of floor"]})
    assert "rounded DOWN" in results["test_conv_output_size"]
    results = run_tests(LESSON, {"pad2d": MUTANTS["pad2d"]["pads the batch and channel axes too"]})
    assert "do not pad the batch axis" in results["test_pad2d"]
    results = run_tests(LESSON, {"conv2d": MUTANTS["conv2d"]["padding only at the top and left"]})
    assert "above AND below" in results["test_conv2d"]
