"""Lesson 02: the tests accept every correct implementation and reject plausible wrong ones.

Each mutant is a mistake learners make; each must fail its function's hidden tests
(the ones that decide the grade). Each alternative is a different correct way to
write the function; it must pass every test cell of the lesson.
"""


from tests.notebook_runner import run_tests

LESSON = "02_convolution"

ALTERNATIVES = {
    "vectorised with sliding_window_view": {
        "correlate2d": '''
import numpy as np
def correlate2d(image, kernel):
    windows = np.lib.stride_tricks.sliding_window_view(image, kernel.shape)
    return np.einsum("ijab,ab->ij", windows, kernel)
''',
        "convolve2d": '''
import numpy as np
def convolve2d(image, kernel):
    windows = np.lib.stride_tricks.sliding_window_view(image, kernel.shape)
    return np.tensordot(windows, np.flip(kernel), axes=([2, 3], [0, 1]))
''',
        "conv2d_forward": '''
import numpy as np
def conv2d_forward(x, w, b=None):
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"x has {x.shape[1]} channels, w has {w.shape[1]}")
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    out = np.einsum("nchwab,fcab->nfhw", windows, w)
    if b is not None:
        out = out + b[None, :, None, None]
    return out
''',
        "compose_kernels": '''
import numpy as np
def compose_kernels(k1, k2):
    # every product k1[a, b] * k2[c, d] lands on K[a + c, b + d]
    (kh1, kw1), (kh2, kw2) = k1.shape, k2.shape
    K = np.zeros((kh1 + kh2 - 1, kw1 + kw2 - 1), dtype=np.result_type(k1, k2))
    outer = np.multiply.outer(k1, k2)
    a, b, c, d = np.indices(outer.shape)
    np.add.at(K, (a + c, b + d), outer)
    return K
''',
    },
    "loops over kernel offsets, accumulating shifted slices": {
        "correlate2d": '''
import numpy as np
def correlate2d(image, kernel):
    kh, kw = kernel.shape
    H, W = image.shape
    out = np.zeros((H - kh + 1, W - kw + 1), dtype=image.dtype)
    for a in range(kh):
        for b in range(kw):
            out += kernel[a, b] * image[a:a + H - kh + 1, b:b + W - kw + 1]
    return out
''',
        "convolve2d": '''
def convolve2d(image, kernel):
    return correlate2d(image, kernel[::-1][:, ::-1])
''',
        "conv2d_forward": '''
import numpy as np
def conv2d_forward(x, w, b=None):
    N, C, H, W = x.shape
    F, C2, kh, kw = w.shape
    if C != C2:
        raise ValueError("channel mismatch: input {} vs weights {}".format(C, C2))
    out = np.empty((N, F, H - kh + 1, W - kw + 1), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            acc = sum(correlate2d(x[n, c], w[f, c]) for c in range(C))
            out[n, f] = acc + (b[f] if b is not None else 0)
    return out
''',
        "compose_kernels": '''
import numpy as np
def compose_kernels(k1, k2):
    # a full convolution: pad k1 by the size of k2 minus one, then convolve (flip k2) with the lesson's function
    kh2, kw2 = k2.shape
    return convolve2d(np.pad(k1, ((kh2 - 1, kh2 - 1), (kw2 - 1, kw2 - 1))), k2)
''',
    },
    "composition by its definition: the response of two layers to single-pixel images": {
        "compose_kernels": '''
import numpy as np
def compose_kernels(k1, k2):
    # two layers on an image that is 1 at pixel (u, v) and as large as K give one number: K[u, v]
    kh, kw = k1.shape[0] + k2.shape[0] - 1, k1.shape[1] + k2.shape[1] - 1
    K = np.empty((kh, kw), dtype=k1.dtype)
    for u in range(kh):
        for v in range(kw):
            impulse = np.zeros((kh, kw), dtype=k1.dtype)
            impulse[u, v] = 1
            K[u, v] = correlate2d(correlate2d(impulse, k1), k2)[0, 0]
    return K
''',
    },
}

MUTANTS = {
    "correlate2d": {
        "kernel flipped (convolution instead of correlation)": '''
import numpy as np
def correlate2d(image, kernel):
    k = kernel[::-1, ::-1]
    kh, kw = k.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i:i + kh, j:j + kw] * k)
    return out
''',
        "off by one: output (H - kh) x (W - kw)": '''
import numpy as np
def correlate2d(image, kernel):
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh, image.shape[1] - kw), dtype=image.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i:i + kh, j:j + kw] * kernel)
    return out
''',
        "kernel height and width swapped (works for square kernels only)": '''
import numpy as np
def correlate2d(image, kernel):
    kw, kh = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1), dtype=image.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i:i + kh, j:j + kw] * kernel.reshape(kh, kw))
    return out
''',
        "always float64 output (dtype not kept)": '''
import numpy as np
def correlate2d(image, kernel):
    kh, kw = kernel.shape
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i:i + kh, j:j + kw] * kernel)
    return out
''',
        "uses PyTorch (not allowed in a NumPy exercise)": '''
import torch
import torch.nn.functional as F
def correlate2d(image, kernel):
    return F.conv2d(torch.from_numpy(image)[None, None], torch.from_numpy(kernel)[None, None])[0, 0].numpy()
''',
        "returns a list": '''
import numpy as np
def correlate2d(image, kernel):
    kh, kw = kernel.shape
    return [[float(np.sum(image[i:i + kh, j:j + kw] * kernel)) for j in range(image.shape[1] - kw + 1)]
            for i in range(image.shape[0] - kh + 1)]
''',
        "modifies the image in place": '''
import numpy as np
def correlate2d(image, kernel):
    kh, kw = kernel.shape
    image -= 0  # harmless so far
    image[0, 0] = 0.0
    out = np.zeros((image.shape[0] - kh + 1, image.shape[1] - kw + 1), dtype=image.dtype)
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = np.sum(image[i:i + kh, j:j + kw] * kernel)
    return out
''',
    },
    "convolve2d": {
        "no flip (correlation)": '''
def convolve2d(image, kernel):
    return correlate2d(image, kernel)
''',
        "flipped on one axis only": '''
def convolve2d(image, kernel):
    return correlate2d(image, kernel[::-1, :])
''',
        "transposed kernel instead of rotated": '''
def convolve2d(image, kernel):
    return correlate2d(image, kernel.T) if kernel.shape[0] == kernel.shape[1] else correlate2d(image, kernel[::-1, ::-1])
''',
        "output flipped instead of kernel": '''
def convolve2d(image, kernel):
    return correlate2d(image, kernel)[::-1, ::-1].copy()
''',
    },
    "conv2d_forward": {
        "forgotten bias": '''
import numpy as np
def conv2d_forward(x, w, b=None):
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but the kernel expects {w.shape[1]}")
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    return np.einsum("nchwab,fcab->nfhw", windows, w)
''',
        "bias added once per input channel": '''
import numpy as np
def conv2d_forward(x, w, b=None):
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but the kernel expects {w.shape[1]}")
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    out = np.zeros((N, F, H - kh + 1, W - kw + 1), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for c in range(C):
                out[n, f] += correlate2d(x[n, c], w[f, c]) + (b[f] if b is not None else 0)
    return out
''',
        "channels not summed (only channel 0)": '''
import numpy as np
def conv2d_forward(x, w, b=None):
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but the kernel expects {w.shape[1]}")
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    out = np.zeros((N, F, H - kh + 1, W - kw + 1), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            out[n, f] = correlate2d(x[n, 0], w[f, 0]) + (b[f] if b is not None else 0)
    return out
''',
        "weights indexed w[c, f] (channel mix-up)": '''
import numpy as np
def conv2d_forward(x, w, b=None):
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but the kernel expects {w.shape[1]}")
    N, C, H, W = x.shape
    F, _, kh, kw = w.shape
    wt = w.reshape(C, F, kh, kw)
    out = np.zeros((N, F, H - kh + 1, W - kw + 1), dtype=x.dtype)
    for n in range(N):
        for f in range(F):
            for c in range(C):
                out[n, f] += correlate2d(x[n, c], wt[c, f])
            if b is not None:
                out[n, f] += b[f]
    return out
''',
        "no ValueError on a channel mismatch": '''
import numpy as np
def conv2d_forward(x, w, b=None):
    C = min(x.shape[1], w.shape[1])
    windows = np.lib.stride_tricks.sliding_window_view(x[:, :C], w.shape[2:], axis=(2, 3))
    out = np.einsum("nchwab,fcab->nfhw", windows, w[:, :C])
    return out if b is None else out + b[None, :, None, None]
''',
        "ValueError that does not say which counts differ": '''
import numpy as np
def conv2d_forward(x, w, b=None):
    if x.shape[1] != w.shape[1]:
        raise ValueError("shapes do not match")
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    out = np.einsum("nchwab,fcab->nfhw", windows, w)
    return out if b is None else out + b[None, :, None, None]
''',
        "bias required (fails when b is None)": '''
import numpy as np
def conv2d_forward(x, w, b=None):
    if x.shape[1] != w.shape[1]:
        raise ValueError(f"input has {x.shape[1]} channels but the kernel expects {w.shape[1]}")
    windows = np.lib.stride_tricks.sliding_window_view(x, w.shape[2:], axis=(2, 3))
    return np.einsum("nchwab,fcab->nfhw", windows, w) + b[None, :, None, None]
''',
    },
    "compose_kernels": {
        "built by correlating the two kernels where they must be convolved": '''
import numpy as np
def compose_kernels(k1, k2):
    kh2, kw2 = k2.shape
    return correlate2d(np.pad(k1, ((kh2 - 1, kh2 - 1), (kw2 - 1, kw2 - 1))), k2)
''',
        "wrong output size: (kh1 + kh2, kw1 + kw2)": '''
import numpy as np
def compose_kernels(k1, k2):
    (kh1, kw1), (kh2, kw2) = k1.shape, k2.shape
    K = np.zeros((kh1 + kh2, kw1 + kw2), dtype=k1.dtype)
    for c in range(kh2):
        for d in range(kw2):
            K[c:c + kh1, d:d + kw1] += k2[c, d] * k1
    return K
''',
        "the result flipped (K[::-1, ::-1])": '''
import numpy as np
def compose_kernels(k1, k2):
    (kh1, kw1), (kh2, kw2) = k1.shape, k2.shape
    K = np.zeros((kh1 + kh2 - 1, kw1 + kw2 - 1), dtype=k1.dtype)
    for c in range(kh2):
        for d in range(kw2):
            K[c:c + kh1, d:d + kw1] += k2[c, d] * k1
    return K[::-1, ::-1].copy()
''',
        "the kernels correlated in valid mode (a (kh1 - kh2 + 1) x (kw1 - kw2 + 1) kernel)": '''
def compose_kernels(k1, k2):
    return correlate2d(k1, k2)
''',
        "always float64": '''
import numpy as np
def compose_kernels(k1, k2):
    (kh1, kw1), (kh2, kw2) = k1.shape, k2.shape
    K = np.zeros((kh1 + kh2 - 1, kw1 + kw2 - 1))
    for c in range(kh2):
        for d in range(kw2):
            K[c:c + kh1, d:d + kw1] += k2[c, d] * k1
    return K
''',
    },
}





def test_failure_messages_teach():
    """A wrong output size is reported with the axis and the formula, not a bare assertion."""
    results = run_tests(LESSON, {"correlate2d": MUTANTS["correlate2d"]["off by one: output (H - kh) x (W - kw)"]})
    assert "expected shape (4, 4), got (3, 3)" in results["test_correlate2d"]
    assert "H - kh + 1" in results["test_correlate2d"]
    results = run_tests(LESSON, {"correlate2d": MUTANTS["correlate2d"]["uses PyTorch (not allowed in a NumPy exercise)"]})
    assert "NumPy alone" in results["test_correlate2d"]
