"""Lesson 05: the tests accept every correct implementation and reject plausible wrong ones.

Each mutant is a mistake learners make with normalisation layers; each must fail its
function's hidden tests. Each alternative is a different correct way to write the
function; it must pass every test cell of the lesson.
"""


from tests.notebook_runner import run_tests

LESSON = "05_normalization"

ALTERNATIVES = {
    "explicit sums and loops over channels": {
        "batchnorm2d": '''
import numpy as np
def batchnorm2d(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    N, C, H, W = x.shape
    out = np.empty_like(x)
    new_mean = np.array(running_mean, dtype=running_mean.dtype, copy=True)
    new_var = np.array(running_var, dtype=running_var.dtype, copy=True)
    for c in range(C):
        values = x[:, c]
        if training:
            m = values.size
            mu = values.sum() / m
            var = ((values - mu) ** 2).sum() / m
            new_mean[c] = running_mean[c] + momentum * (mu - running_mean[c])
            new_var[c] = running_var[c] + momentum * (var * m / (m - 1) - running_var[c])
        else:
            mu, var = running_mean[c], running_var[c]
        out[:, c] = gamma[c] * (values - mu) / np.sqrt(var + eps) + beta[c]
    return out, new_mean, new_var
''',
        "group_norm": '''
import numpy as np
def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    N, C, H, W = x.shape
    if C % num_groups:
        raise ValueError(f"num_groups={num_groups} does not divide C={C}")
    size = C // num_groups
    out = np.empty_like(x)
    for n in range(N):
        for g in range(num_groups):
            block = x[n, g * size:(g + 1) * size]
            mu = block.mean()
            var = ((block - mu) ** 2).mean()
            out[n, g * size:(g + 1) * size] = (block - mu) / np.sqrt(var + eps)
    return out * gamma.reshape(1, C, 1, 1) + beta.reshape(1, C, 1, 1)
''',
        "batchnorm2d_backward": '''
import numpy as np
def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    # Step by step through the computational graph (CS231n style).
    axes = (0, 2, 3)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    mu = x.mean(axis=axes, keepdims=True)
    xc = x - mu
    var = (xc ** 2).mean(axis=axes, keepdims=True)
    std = np.sqrt(var + eps)
    xhat = xc / std
    dbeta = dout.sum(axis=axes)
    dgamma = (dout * xhat).sum(axis=axes)
    dxhat = dout * gamma.reshape(1, -1, 1, 1)
    dstd = -(dxhat * xc).sum(axis=axes, keepdims=True) / std ** 2
    dvar = dstd / (2 * std)
    dxc = dxhat / std + 2 * xc * dvar / m
    dmu = -dxc.sum(axis=axes, keepdims=True)
    dx = dxc + dmu / m
    return dx, dgamma, dbeta
''',
    },
    "channel-major reshape, folded scale and shift, ddof=1": {
        "batchnorm2d": '''
import numpy as np
def batchnorm2d(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    C = x.shape[1]
    flat = np.moveaxis(x, 1, 0).reshape(C, -1)
    if training:
        mu = flat.mean(axis=1)
        var = flat.var(axis=1)
        unbiased = flat.var(axis=1, ddof=1)
        rm = momentum * mu + (1 - momentum) * running_mean
        rv = momentum * unbiased + (1 - momentum) * running_var
    else:
        mu, var, rm, rv = running_mean, running_var, running_mean + 0, running_var + 0
    scale = (gamma / np.sqrt(var + eps)).astype(x.dtype)
    shift = (beta - mu * scale).astype(x.dtype)
    return x * scale.reshape(1, C, 1, 1) + shift.reshape(1, C, 1, 1), rm.astype(x.dtype), rv.astype(x.dtype)
''',
        "group_norm": '''
import numpy as np
def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    N, C, H, W = x.shape
    if C % num_groups != 0:
        raise ValueError("cannot divide %d channels into %d groups" % (C, num_groups))
    flat = x.reshape(N * num_groups, -1)
    mu = flat.mean(axis=1, keepdims=True)
    var = flat.var(axis=1, keepdims=True)
    xhat = ((flat - mu) / np.sqrt(var + eps)).reshape(N, C, H, W)
    return xhat * gamma[:, None, None] + beta[:, None, None]
''',
        "batchnorm2d_backward": '''
import numpy as np
def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    N, C, H, W = x.shape
    m = N * H * W
    xf = x.transpose(1, 0, 2, 3).reshape(C, -1)
    df = dout.transpose(1, 0, 2, 3).reshape(C, -1)
    mu = xf.mean(axis=1, keepdims=True)
    inv = 1 / np.sqrt(xf.var(axis=1, keepdims=True) + eps)
    xhat = (xf - mu) * inv
    dbeta = df.sum(axis=1)
    dgamma = (df * xhat).sum(axis=1)
    dxf = (gamma[:, None] * inv / m) * (m * df - dbeta[:, None] - xhat * dgamma[:, None])
    return dxf.reshape(C, N, H, W).transpose(1, 0, 2, 3), dgamma, dbeta
''',
    },
}

_BN_HEAD = '''
import numpy as np
def batchnorm2d(x, gamma, beta, running_mean, running_var, training=True, momentum=0.1, eps=1e-5):
    axes = (0, 2, 3)
    m = x.shape[0] * x.shape[2] * x.shape[3]
    b = lambda v: v[None, :, None, None]
'''

MUTANTS = {
    "batchnorm2d": {
        "biased variance for running_var": _BN_HEAD + '''
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        rm = (1 - momentum) * running_mean + momentum * mean
        rv = (1 - momentum) * running_var + momentum * var
    else:
        mean, var, rm, rv = running_mean, running_var, running_mean.copy(), running_var.copy()
    return b(gamma) * (x - b(mean)) / np.sqrt(b(var) + eps) + b(beta), rm, rv
''',
        "unbiased variance for normalising": _BN_HEAD + '''
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes, ddof=1)
        rm = (1 - momentum) * running_mean + momentum * mean
        rv = (1 - momentum) * running_var + momentum * var
    else:
        mean, var, rm, rv = running_mean, running_var, running_mean.copy(), running_var.copy()
    return b(gamma) * (x - b(mean)) / np.sqrt(b(var) + eps) + b(beta), rm, rv
''',
        "batch statistics in eval mode": _BN_HEAD + '''
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    if training:
        rm = (1 - momentum) * running_mean + momentum * mean
        rv = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    else:
        rm, rv = running_mean.copy(), running_var.copy()
    return b(gamma) * (x - b(mean)) / np.sqrt(b(var) + eps) + b(beta), rm, rv
''',
        "momentum the wrong way round": _BN_HEAD + '''
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        rm = momentum * running_mean + (1 - momentum) * mean
        rv = momentum * running_var + (1 - momentum) * var * m / (m - 1)
    else:
        mean, var, rm, rv = running_mean, running_var, running_mean.copy(), running_var.copy()
    return b(gamma) * (x - b(mean)) / np.sqrt(b(var) + eps) + b(beta), rm, rv
''',
        "eps outside the square root": _BN_HEAD + '''
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        rm = (1 - momentum) * running_mean + momentum * mean
        rv = (1 - momentum) * running_var + momentum * var * m / (m - 1)
    else:
        mean, var, rm, rv = running_mean, running_var, running_mean.copy(), running_var.copy()
    return b(gamma) * (x - b(mean)) / (np.sqrt(b(var)) + eps) + b(beta), rm, rv
''',
        "running statistics updated in eval mode too": _BN_HEAD + '''
    bmean, bvar = x.mean(axis=axes), x.var(axis=axes)
    rm = (1 - momentum) * running_mean + momentum * bmean
    rv = (1 - momentum) * running_var + momentum * bvar * m / max(m - 1, 1)
    mean, var = (bmean, bvar) if training else (running_mean, running_var)
    return b(gamma) * (x - b(mean)) / np.sqrt(b(var) + eps) + b(beta), rm, rv
''',
        "running statistics modified in place": _BN_HEAD + '''
    if training:
        mean, var = x.mean(axis=axes), x.var(axis=axes)
        running_mean *= 1 - momentum
        running_mean += momentum * mean
        running_var *= 1 - momentum
        running_var += momentum * var * m / (m - 1)
    else:
        mean, var = running_mean, running_var
    return b(gamma) * (x - b(mean)) / np.sqrt(b(var) + eps) + b(beta), running_mean, running_var
''',
        "statistics over (N, C, H, W) instead of per channel": _BN_HEAD + '''
    if training:
        mean, var = np.full(x.shape[1], x.mean()), np.full(x.shape[1], x.var())
        rm = (1 - momentum) * running_mean + momentum * mean
        rv = (1 - momentum) * running_var + momentum * var * x.size / (x.size - 1)
    else:
        mean, var, rm, rv = running_mean, running_var, running_mean.copy(), running_var.copy()
    return b(gamma) * (x - b(mean)) / np.sqrt(b(var) + eps) + b(beta), rm, rv
''',
        "statistics over N only (per channel and position)": _BN_HEAD + '''
    if training:
        mean, var = x.mean(axis=0, keepdims=True), x.var(axis=0, keepdims=True)
        rm = (1 - momentum) * running_mean + momentum * mean.mean(axis=(0, 2, 3))
        rv = (1 - momentum) * running_var + momentum * x.var(axis=axes) * m / (m - 1)
        out = b(gamma) * (x - mean) / np.sqrt(var + eps) + b(beta)
    else:
        rm, rv = running_mean.copy(), running_var.copy()
        out = b(gamma) * (x - b(rm)) / np.sqrt(b(rv) + eps) + b(beta)
    return out, rm, rv
''',
        "running statistics in float64 for float32 input (computed in float64, only out cast back)": _BN_HEAD + '''
    if training:
        x64 = x.astype(np.float64)
        mean, var = x64.mean(axis=axes), x64.var(axis=axes)
        rm = (1 - momentum) * running_mean.astype(np.float64) + momentum * mean
        rv = (1 - momentum) * running_var.astype(np.float64) + momentum * var * m / (m - 1)
    else:
        mean, var = running_mean, running_var
        rm, rv = running_mean.astype(np.float64), running_var.astype(np.float64)
    return (b(gamma) * (x - b(mean)) / np.sqrt(b(var) + eps) + b(beta)).astype(x.dtype), rm, rv
''',
    },
    "group_norm": {
        "channels grouped interleaved (c % G) instead of contiguous": '''
import numpy as np
def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    N, C, H, W = x.shape
    if C % num_groups:
        raise ValueError(f"{C} channels, {num_groups} groups")
    g = x.reshape(N, C // num_groups, num_groups, H, W)
    mean = g.mean(axis=(1, 3, 4), keepdims=True)
    var = g.var(axis=(1, 3, 4), keepdims=True)
    xhat = ((g - mean) / np.sqrt(var + eps)).reshape(N, C, H, W)
    return gamma[None, :, None, None] * xhat + beta[None, :, None, None]
''',
        "no ValueError for indivisible groups": '''
import numpy as np
def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    N, C, H, W = x.shape
    size = max(C // num_groups, 1)
    out = np.empty_like(x)
    for start in range(0, C, size):
        block = x[:, start:start + size]
        mean = block.mean(axis=(1, 2, 3), keepdims=True)
        var = block.var(axis=(1, 2, 3), keepdims=True)
        out[:, start:start + size] = (block - mean) / np.sqrt(var + eps)
    return gamma[None, :, None, None] * out + beta[None, :, None, None]
''',
        "ValueError without the numbers": '''
import numpy as np
def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    N, C, H, W = x.shape
    if C % num_groups:
        raise ValueError("channels must be divisible by the number of groups")
    g = x.reshape(N, num_groups, -1)
    xhat = ((g - g.mean(axis=2, keepdims=True)) / np.sqrt(g.var(axis=2, keepdims=True) + eps)).reshape(x.shape)
    return gamma[None, :, None, None] * xhat + beta[None, :, None, None]
''',
        "statistics shared across the batch": '''
import numpy as np
def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    N, C, H, W = x.shape
    if C % num_groups:
        raise ValueError(f"{C} channels, {num_groups} groups")
    g = x.reshape(N, num_groups, C // num_groups, H, W)
    mean = g.mean(axis=(0, 2, 3, 4), keepdims=True)
    var = g.var(axis=(0, 2, 3, 4), keepdims=True)
    xhat = ((g - mean) / np.sqrt(var + eps)).reshape(N, C, H, W)
    return gamma[None, :, None, None] * xhat + beta[None, :, None, None]
''',
        "gamma and beta applied per group instead of per channel": '''
import numpy as np
def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    N, C, H, W = x.shape
    if C % num_groups:
        raise ValueError(f"{C} channels, {num_groups} groups")
    g = x.reshape(N, num_groups, C // num_groups, H, W)
    mean = g.mean(axis=(2, 3, 4), keepdims=True)
    var = g.var(axis=(2, 3, 4), keepdims=True)
    size = C // num_groups
    scale = np.repeat(gamma[::size], size)
    shift = np.repeat(beta[::size], size)
    xhat = ((g - mean) / np.sqrt(var + eps)).reshape(N, C, H, W)
    return scale[None, :, None, None] * xhat + shift[None, :, None, None]
''',
        "unbiased variance": '''
import numpy as np
def group_norm(x, num_groups, gamma, beta, eps=1e-5):
    N, C, H, W = x.shape
    if C % num_groups:
        raise ValueError(f"{C} channels, {num_groups} groups")
    g = x.reshape(N, num_groups, -1)
    var = g.var(axis=2, ddof=1, keepdims=True) if g.shape[2] > 1 else np.zeros_like(g[..., :1])
    xhat = ((g - g.mean(axis=2, keepdims=True)) / np.sqrt(var + eps)).reshape(x.shape)
    return gamma[None, :, None, None] * xhat + beta[None, :, None, None]
''',
    },
    "batchnorm2d_backward": {
        "missing the mean terms (mean and variance treated as constants)": '''
import numpy as np
def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    axes = (0, 2, 3)
    inv = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - x.mean(axis=axes, keepdims=True)) * inv
    return dout * gamma[None, :, None, None] * inv, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)
''',
        "missing the term through the variance": '''
import numpy as np
def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    axes = (0, 2, 3)
    inv = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - x.mean(axis=axes, keepdims=True)) * inv
    g = dout * gamma[None, :, None, None]
    return inv * (g - g.mean(axis=axes, keepdims=True)), (dout * xhat).sum(axis=axes), dout.sum(axis=axes)
''',
        "missing the term through the mean": '''
import numpy as np
def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    axes = (0, 2, 3)
    inv = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - x.mean(axis=axes, keepdims=True)) * inv
    g = dout * gamma[None, :, None, None]
    dx = inv * (g - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)
''',
        "dgamma without x_hat": '''
import numpy as np
def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    axes = (0, 2, 3)
    inv = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - x.mean(axis=axes, keepdims=True)) * inv
    g = dout * gamma[None, :, None, None]
    dx = inv * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return dx, dout.sum(axis=axes), dout.sum(axis=axes)
''',
        "gamma forgotten in dx": '''
import numpy as np
def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    axes = (0, 2, 3)
    inv = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - x.mean(axis=axes, keepdims=True)) * inv
    g = dout
    dx = inv * (g - g.mean(axis=axes, keepdims=True) - xhat * (g * xhat).mean(axis=axes, keepdims=True))
    return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)
''',
        "means over N only": '''
import numpy as np
def batchnorm2d_backward(dout, x, gamma, eps=1e-5):
    axes = (0, 2, 3)
    inv = 1 / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    xhat = (x - x.mean(axis=axes, keepdims=True)) * inv
    g = dout * gamma[None, :, None, None]
    dx = inv * (g - g.mean(axis=0, keepdims=True) - xhat * (g * xhat).mean(axis=0, keepdims=True))
    return dx, (dout * xhat).sum(axis=axes), dout.sum(axis=axes)
''',
    },
}





def test_failure_messages_teach():
    """The visible tests name the likely mistake, not just the wrong numbers."""
    results = run_tests(LESSON, {"batchnorm2d": MUTANTS["batchnorm2d"]["momentum the wrong way round"]})
    assert "momentum weighs the NEW batch" in results["test_batchnorm2d"]
    results = run_tests(LESSON, {"batchnorm2d": MUTANTS["batchnorm2d"]["running statistics modified in place"]})
    assert "in place" in results["test_batchnorm2d"]
    results = run_tests(LESSON, {"group_norm": MUTANTS["group_norm"][
        "channels grouped interleaved (c % G) instead of contiguous"]})
    assert "CONTIGUOUS" in results["test_group_norm"]
    results = run_tests(LESSON, {"batchnorm2d_backward": MUTANTS["batchnorm2d_backward"][
        "missing the mean terms (mean and variance treated as constants)"]})
    assert "batch mean" in results["test_batchnorm2d_backward"]


def test_visible_tests_catch_the_common_mistakes():
    """Each of these mistakes fails a visible test (all a self-learner sees), with a hint at the cause."""
    for function, label, words in [
            ("batchnorm2d", "statistics over (N, C, H, W) instead of per channel", "never over C"),
            ("batchnorm2d", "running statistics in float64 for float32 input (computed in float64, only out cast back)",
             "keep x's dtype"),
            ("group_norm", "gamma and beta applied per group instead of per channel", "one value per CHANNEL"),
            ("batchnorm2d_backward", "gamma forgotten in dx", "multiplied by gamma")]:
        results = run_tests(LESSON, {function: MUTANTS[function][label]})
        assert words in (results[f"test_{function}"] or ""), (label, results[f"test_{function}"])
