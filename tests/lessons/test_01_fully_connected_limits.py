"""Lesson 01: the tests accept every correct implementation and reject plausible wrong ones.

Each mutant is a mistake learners make; each must fail its function's hidden tests
(the ones that decide the grade). Each alternative is a different correct way to
write the function; it must pass every test cell of the lesson.
"""


from tests.notebook_runner import run_tests

LESSON = "01_fully_connected_limits"

ALTERNATIVES = {
    "vectorised: numpy products, index arrays, slicing with clipped bounds": {
        "dense_param_count": '''
import numpy as np
def dense_param_count(in_features, out_features, bias=True):
    return int(np.prod([in_features, out_features])) + int(bias) * out_features
''',
        "conv_param_count": '''
import numpy as np
def conv_param_count(in_channels, out_channels, kernel_size, bias=True):
    kh, kw = np.broadcast_to(np.asarray(kernel_size), (2,))
    return int(out_channels * in_channels * kh * kw + (out_channels if bias else 0))
''',
        "conv_as_matrix": '''
import numpy as np
def conv_as_matrix(kernel, height, width):
    kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ValueError(f"kernel {kernel.shape} larger than image ({height}, {width})")
    oh, ow = height - kh + 1, width - kw + 1
    i, j, a, b = np.meshgrid(np.arange(oh), np.arange(ow), np.arange(kh), np.arange(kw), indexing="ij")
    M = np.zeros((oh * ow, height * width), dtype=kernel.dtype)
    M[(i * ow + j).ravel(), ((i + a) * width + (j + b)).ravel()] = np.broadcast_to(kernel, i.shape).ravel()
    return M
''',
        "translate": '''
import numpy as np
def translate(images, dy, dx):
    H, W = images.shape[-2:]
    out = np.zeros_like(images)
    rows_out = np.arange(H)
    cols_out = np.arange(W)
    rows_in, cols_in = rows_out - dy, cols_out - dx
    r_ok = (rows_in >= 0) & (rows_in < H)
    c_ok = (cols_in >= 0) & (cols_in < W)
    sub = images[..., rows_in[r_ok], :][..., cols_in[c_ok]]
    out[..., np.flatnonzero(r_ok)[:, None], np.flatnonzero(c_ok)[None, :]] = sub
    return out
''',
    },
    "loops, pure Python counting, padding then cropping": {
        "dense_param_count": '''
def dense_param_count(in_features, out_features, bias=True):
    total = 0
    for _ in range(out_features):
        total += in_features
        if bias:
            total += 1
    return total
''',
        "conv_param_count": '''
def conv_param_count(in_channels, out_channels, kernel_size, bias=True):
    if not isinstance(kernel_size, (tuple, list)):
        kernel_size = (kernel_size, kernel_size)
    per_filter = in_channels
    for k in kernel_size:
        per_filter *= k
    return out_channels * (per_filter + (1 if bias else 0))
''',
        "conv_as_matrix": '''
import numpy as np
def conv_as_matrix(kernel, height, width):
    kh, kw = kernel.shape
    if kh > height:
        raise ValueError("kernel height %d exceeds image height %d" % (kh, height))
    if kw > width:
        raise ValueError("kernel width %d exceeds image width %d" % (kw, width))
    oh, ow = height - kh + 1, width - kw + 1
    rows = []
    for i in range(oh):
        for j in range(ow):
            canvas = np.zeros((height, width), dtype=kernel.dtype)
            canvas[i:i + kh, j:j + kw] = kernel
            rows.append(canvas.ravel())
    return np.array(rows)
''',
        "translate": '''
import numpy as np
def translate(images, dy, dx):
    H, W = images.shape[-2:]
    dy, dx = max(-H, min(H, dy)), max(-W, min(W, dx))
    py, px = abs(dy), abs(dx)
    pad = [(0, 0)] * (images.ndim - 2) + [(py, py), (px, px)]
    big = np.pad(images, pad)
    top, left = py - dy, px - dx
    return big[..., top:top + H, left:left + W].copy()
''',
    },
    "basis images through a correlation; translate as a loop over pixels": {
        "conv_as_matrix": '''
import numpy as np
def conv_as_matrix(kernel, height, width):
    kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ValueError(f"a {kh}x{kw} kernel does not fit in {height}x{width}")
    cols = []
    for p in range(height * width):
        e = np.zeros(height * width, dtype=kernel.dtype)
        e[p] = 1
        win = np.lib.stride_tricks.sliding_window_view(e.reshape(height, width), (kh, kw))
        cols.append(np.einsum("ijab,ab->ij", win, kernel).ravel())
    return np.stack(cols, axis=1)
''',
        "translate": '''
import numpy as np
def translate(images, dy, dx):
    H, W = images.shape[-2:]
    out = np.zeros_like(images)
    for i in range(H):
        for j in range(W):
            si, sj = i - dy, j - dx
            if 0 <= si < H and 0 <= sj < W:
                out[..., i, j] = images[..., si, sj]
    return out
''',
    },
}

_TRANSLATE_BODY = '''
    H, W = images.shape[-2:]
    out = np.zeros_like(images)
    if abs(dy) >= H or abs(dx) >= W:
        return out
    out[..., max(0, dy):H - max(0, -dy), max(0, dx):W - max(0, -dx)] = \\
        images[..., max(0, -dy):H - max(0, dy), max(0, -dx):W - max(0, dx)]
    return out
'''

MUTANTS = {
    "dense_param_count": {
        "forgotten bias": '''
def dense_param_count(in_features, out_features, bias=True):
    return in_features * out_features
''',
        "bias always added (ignores bias=False)": '''
def dense_param_count(in_features, out_features, bias=True):
    return in_features * out_features + out_features
''',
        "one bias per input instead of per output": '''
def dense_param_count(in_features, out_features, bias=True):
    return in_features * out_features + (in_features if bias else 0)
''',
        "returns a float": '''
def dense_param_count(in_features, out_features, bias=True):
    return float(in_features * out_features + (out_features if bias else 0))
''',
        "(in + 1) * (out + 1)": '''
def dense_param_count(in_features, out_features, bias=True):
    return (in_features + int(bias)) * (out_features + int(bias)) - int(bias)
''',
    },
    "conv_param_count": {
        "forgotten bias": '''
def conv_param_count(in_channels, out_channels, kernel_size, bias=True):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return out_channels * in_channels * kh * kw
''',
        "forgotten in_channels (one 2-D kernel per output map)": '''
def conv_param_count(in_channels, out_channels, kernel_size, bias=True):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return out_channels * kh * kw + (out_channels if bias else 0)
''',
        "int kernel_size counted as k, not k * k": '''
def conv_param_count(in_channels, out_channels, kernel_size, bias=True):
    k = kernel_size if isinstance(kernel_size, int) else kernel_size[0] * kernel_size[1]
    return out_channels * in_channels * k + (out_channels if bias else 0)
''',
        "pair kernel_size: only kh used (kh * kh)": '''
def conv_param_count(in_channels, out_channels, kernel_size, bias=True):
    k = kernel_size if isinstance(kernel_size, int) else kernel_size[0]
    return out_channels * in_channels * k * k + (out_channels if bias else 0)
''',
        "one bias per (input, output) channel pair": '''
def conv_param_count(in_channels, out_channels, kernel_size, bias=True):
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    return out_channels * in_channels * (kh * kw + (1 if bias else 0))
''',
    },
    "conv_as_matrix": {
        "kernel flipped (true convolution)": '''
import numpy as np
def conv_as_matrix(kernel, height, width):
    kernel = kernel[::-1, ::-1]
    kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ValueError(f"kernel {kh}x{kw} does not fit in {height}x{width}")
    oh, ow = height - kh + 1, width - kw + 1
    M = np.zeros((oh * ow, height * width), dtype=kernel.dtype)
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    M[i * ow + j, (i + a) * width + j + b] = kernel[a, b]
    return M
''',
        "rows in column-major order (j * out_h + i)": '''
import numpy as np
def conv_as_matrix(kernel, height, width):
    kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ValueError(f"kernel {kh}x{kw} does not fit in {height}x{width}")
    oh, ow = height - kh + 1, width - kw + 1
    M = np.zeros((oh * ow, height * width), dtype=kernel.dtype)
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    M[j * oh + i, (i + a) * width + j + b] = kernel[a, b]
    return M
''',
        "input index uses height as the row stride": '''
import numpy as np
def conv_as_matrix(kernel, height, width):
    kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ValueError(f"kernel {kh}x{kw} does not fit in {height}x{width}")
    oh, ow = height - kh + 1, width - kw + 1
    M = np.zeros((oh * ow, height * width), dtype=kernel.dtype)
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    col = (i + a) * height + j + b
                    if col < height * width:
                        M[i * ow + j, col] = kernel[a, b]
    return M
''',
        "transposed matrix (H*W, out) for square cases only": '''
import numpy as np
def conv_as_matrix(kernel, height, width):
    kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ValueError(f"kernel {kh}x{kw} does not fit in {height}x{width}")
    oh, ow = height - kh + 1, width - kw + 1
    M = np.zeros((oh * ow, height * width), dtype=kernel.dtype)
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    M[i * ow + j, (j + b) * height + i + a] = kernel[a, b]
    return M
''',
        "no size check (empty matrix or NumPy's own error)": '''
import numpy as np
def conv_as_matrix(kernel, height, width):
    kh, kw = kernel.shape
    oh, ow = height - kh + 1, width - kw + 1
    M = np.zeros((oh * ow, height * width), dtype=kernel.dtype)
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    M[i * ow + j, (i + a) * width + j + b] = kernel[a, b]
    return M
''',
        "always float64": '''
import numpy as np
def conv_as_matrix(kernel, height, width):
    kh, kw = kernel.shape
    if kh > height or kw > width:
        raise ValueError(f"kernel {kh}x{kw} does not fit in {height}x{width}")
    oh, ow = height - kh + 1, width - kw + 1
    M = np.zeros((oh * ow, height * width))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    M[i * ow + j, (i + a) * width + j + b] = kernel[a, b]
    return M
''',
    },
    "translate": {
        "wraps around (np.roll)": '''
import numpy as np
def translate(images, dy, dx):
    return np.roll(images, (dy, dx), axis=(-2, -1))
''',
        "dy and dx swapped": '''
import numpy as np
def translate(images, dx, dy):
''' + _TRANSLATE_BODY,
        "direction reversed (dy moves up)": '''
import numpy as np
def translate(images, dy, dx):
    dy, dx = -dy, -dx
''' + _TRANSLATE_BODY,
        "x[..., :-dy] slicing breaks for a zero shift": '''
import numpy as np
def translate(images, dy, dx):
    out = np.zeros_like(images)
    H, W = images.shape[-2:]
    if abs(dy) >= H or abs(dx) >= W:
        return out
    src = images[..., :-dy, :] if dy >= 0 else images[..., -dy:, :]
    src = src[..., :-dx] if dx >= 0 else src[..., -dx:]
    out[..., max(dy, 0):max(dy, 0) + src.shape[-2], max(dx, 0):max(dx, 0) + src.shape[-1]] = src
    return out
''',
        "shifts of the full size or more not handled": '''
import numpy as np
def translate(images, dy, dx):
    H, W = images.shape[-2:]
    out = np.zeros_like(images)
    out[..., max(0, dy):H - max(0, -dy), max(0, dx):W - max(0, -dx)] = \\
        images[..., max(0, -dy):H - max(0, dy), max(0, -dx):W - max(0, dx)]
    return out
''',
        "assumes a 4-D batch (x[:, :, ...])": '''
import numpy as np
def translate(images, dy, dx):
    N, C, H, W = images.shape
    out = np.zeros_like(images)
    if abs(dy) >= H or abs(dx) >= W:
        return out
    out[:, :, max(0, dy):H - max(0, -dy), max(0, dx):W - max(0, -dx)] = \\
        images[:, :, max(0, -dy):H - max(0, dy), max(0, -dx):W - max(0, dx)]
    return out
''',
        "float64 output for every input": '''
import numpy as np
def translate(images, dy, dx):
    images = images.astype(np.float64)
''' + _TRANSLATE_BODY,
    },
}





def test_failure_messages_teach():
    """Wrapping around and a flipped kernel are reported with the likely cause."""
    results = run_tests(LESSON, {"translate": MUTANTS["translate"]["wraps around (np.roll)"]})
    assert "np.roll" in results["test_translate"]
    results = run_tests(LESSON, {"conv_as_matrix": MUTANTS["conv_as_matrix"]["kernel flipped (true convolution)"]})
    assert "no flip" in results["test_conv_as_matrix"]
    results = run_tests(LESSON, {"conv_param_count": MUTANTS["conv_param_count"]["forgotten bias"]})
    assert "one per output map" in results["test_conv_param_count"]
