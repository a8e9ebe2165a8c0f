"""Lesson 06: the tests accept every correct implementation and reject plausible wrong ones.

Each mutant is a mistake learners make with receptive fields; each must fail its
function's hidden tests. Each alternative is a different correct way to write the
function; it must pass every test cell of the lesson.
"""


from tests.notebook_runner import run_tests

LESSON = "06_receptive_fields"

ALTERNATIVES = {
    "closed forms with products of strides": {
        "receptive_fields": '''
import math
def receptive_fields(layers):
    out = []
    for n in range(1, len(layers) + 1):
        size = 1 + sum(l.get("dilation", 1) * (l["kernel"] - 1) * math.prod(m.get("stride", 1) for m in layers[:i])
                       for i, l in enumerate(layers[:n]))
        out.append((size, math.prod(m.get("stride", 1) for m in layers[:n])))
    return out
''',
        "input_window": '''
def input_window(layers, index):
    # first = index * J_L - sum_l p_l J_{l-1};  last = first + size - 1
    jump, shift, size = 1, 0, 1
    for layer in layers:
        shift += layer.get("padding", 0) * jump
        size += layer.get("dilation", 1) * (layer["kernel"] - 1) * jump
        jump *= layer.get("stride", 1)
    first = index * jump - shift
    return first, first + size - 1
''',
        "gradient_window": '''
import numpy as np
import torch
def gradient_window(model, x, out_position):
    c, i, j = out_position
    x = x.detach().clone()
    x.requires_grad = True
    y = model(x)
    model.zero_grad()
    y[0, c, i, j].backward()
    g = x.grad[0].abs().sum(0).numpy()
    rows = np.flatnonzero(g.sum(axis=1))
    cols = np.flatnonzero(g.sum(axis=0))
    return (int(rows.min()), int(rows.max())), (int(cols.min()), int(cols.max()))
''',
    },
    "dataclass-free loops, numpy integers, grad via one-hot seed": {
        "receptive_fields": '''
import numpy as np
def receptive_fields(layers):
    k = np.array([l["kernel"] for l in layers], dtype=np.int64)
    s = np.array([l.get("stride", 1) for l in layers], dtype=np.int64)
    d = np.array([l.get("dilation", 1) for l in layers], dtype=np.int64)
    jumps_before = np.concatenate([[1], np.cumprod(s)[:-1]]) if len(layers) else np.array([], dtype=np.int64)
    sizes = 1 + np.cumsum(d * (k - 1) * jumps_before)
    return [(int(a), int(b)) for a, b in zip(sizes, np.cumprod(s))]
''',
        "input_window": '''
import numpy as np
def input_window(layers, index):
    lo = hi = np.int64(index)
    for layer in layers[::-1]:
        s = layer["stride"] if "stride" in layer else 1
        p = layer["padding"] if "padding" in layer else 0
        d = layer["dilation"] if "dilation" in layer else 1
        lo = lo * s - p
        hi = hi * s - p + d * (layer["kernel"] - 1)
    return lo, hi
''',
        "gradient_window": '''
import torch
def gradient_window(model, x, out_position):
    x = x.detach().clone().requires_grad_()
    y = model(x)
    seed = torch.zeros_like(y)
    seed[(0,) + tuple(out_position)] = 1
    (g,) = torch.autograd.grad(y, x, grad_outputs=seed)
    where = torch.nonzero(g[0].abs().amax(dim=0))
    if where.numel() == 0:
        raise ValueError(f"unit {out_position} sees nothing")
    r, c = where[:, 0], where[:, 1]
    return (r.min().item(), r.max().item()), (c.min().item(), c.max().item())
''',
    },
}

MUTANTS = {
    "receptive_fields": {
        "jump updated before size": '''
def receptive_fields(layers):
    size, jump, out = 1, 1, []
    for l in layers:
        jump *= l.get("stride", 1)
        size += l.get("dilation", 1) * (l["kernel"] - 1) * jump
        out.append((size, jump))
    return out
''',
        "dilation ignored": '''
def receptive_fields(layers):
    size, jump, out = 1, 1, []
    for l in layers:
        size += (l["kernel"] - 1) * jump
        jump *= l.get("stride", 1)
        out.append((size, jump))
    return out
''',
        "jump ignored (kernel sizes just added)": '''
def receptive_fields(layers):
    size, jump, out = 1, 1, []
    for l in layers:
        size += l.get("dilation", 1) * (l["kernel"] - 1)
        jump *= l.get("stride", 1)
        out.append((size, jump))
    return out
''',
        "k * jump instead of (k - 1) * jump": '''
def receptive_fields(layers):
    size, jump, out = 0, 1, []
    for l in layers:
        size += l.get("dilation", 1) * l["kernel"] * jump
        jump *= l.get("stride", 1)
        out.append((size, jump))
    return out
''',
        "pool layers only change the jump": '''
def receptive_fields(layers):
    size, jump, out = 1, 1, []
    for l in layers:
        if l.get("stride", 1) != l["kernel"]:
            size += l.get("dilation", 1) * (l["kernel"] - 1) * jump
        jump *= l.get("stride", 1)
        out.append((size, jump))
    return out
''',
    },
    "input_window": {
        "padding not subtracted": '''
def input_window(layers, index):
    first = last = index
    for l in reversed(layers):
        s, d = l.get("stride", 1), l.get("dilation", 1)
        first, last = first * s, last * s + d * (l["kernel"] - 1)
    return first, last
''',
        "off-by-one last index (exclusive end)": '''
def input_window(layers, index):
    first = last = index
    for l in reversed(layers):
        s, p, d = l.get("stride", 1), l.get("padding", 0), l.get("dilation", 1)
        first, last = first * s - p, last * s - p + d * (l["kernel"] - 1)
    return first, last + 1
''',
        "dilation ignored": '''
def input_window(layers, index):
    first = last = index
    for l in reversed(layers):
        s, p = l.get("stride", 1), l.get("padding", 0)
        first, last = first * s - p, last * s - p + (l["kernel"] - 1)
    return first, last
''',
        "layers walked from the input upwards": '''
def input_window(layers, index):
    first = last = index
    for l in layers:
        s, p, d = l.get("stride", 1), l.get("padding", 0), l.get("dilation", 1)
        first, last = first * s - p, last * s - p + d * (l["kernel"] - 1)
    return first, last
''',
        "paddings not scaled by the jump": '''
def input_window(layers, index):
    jump, size, pad = 1, 1, 0
    for l in layers:
        size += l.get("dilation", 1) * (l["kernel"] - 1) * jump
        jump *= l.get("stride", 1)
        pad += l.get("padding", 0)
    return index * jump - pad, index * jump - pad + size - 1
''',
    },
    "gradient_window": {
        "exclusive end": '''
import torch
def gradient_window(model, x, out_position):
    c, i, j = out_position
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[0, c, i, j], x)
    t = (g[0] != 0).any(0)
    r, k = torch.nonzero(t.any(1)).flatten(), torch.nonzero(t.any(0)).flatten()
    return (int(r[0]), int(r[-1]) + 1), (int(k[0]), int(k[-1]) + 1)
''',
        "only channel 0 of the input": '''
import torch
def gradient_window(model, x, out_position):
    c, i, j = out_position
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[0, c, i, j], x)
    t = g[0, 0] != 0
    r, k = torch.nonzero(t.any(1)).flatten(), torch.nonzero(t.any(0)).flatten()
    return (int(r[0]), int(r[-1])), (int(k[0]), int(k[-1]))
''',
        "rows and columns swapped": '''
import torch
def gradient_window(model, x, out_position):
    c, i, j = out_position
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[0, c, i, j], x)
    t = (g[0] != 0).any(0)
    r, k = torch.nonzero(t.any(1)).flatten(), torch.nonzero(t.any(0)).flatten()
    return (int(k[0]), int(k[-1])), (int(r[0]), int(r[-1]))
''',
        "gradient of every output summed (whole output, not one unit)": '''
import torch
def gradient_window(model, x, out_position):
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x).sum(), x)
    t = (g[0] != 0).any(0)
    r, k = torch.nonzero(t.any(1)).flatten(), torch.nonzero(t.any(0)).flatten()
    return (int(r[0]), int(r[-1])), (int(k[0]), int(k[-1]))
''',
        "output channel ignored (always channel 0)": '''
import torch
def gradient_window(model, x, out_position):
    c, i, j = out_position
    x = x.detach().clone().requires_grad_(True)
    (g,) = torch.autograd.grad(model(x)[0, 0, i, j], x)
    t = (g[0] != 0).any(0)
    r, k = torch.nonzero(t.any(1)).flatten(), torch.nonzero(t.any(0)).flatten()
    return (int(r[0]), int(r[-1])), (int(k[0]), int(k[-1]))
''',
    },
}





def test_failure_messages_teach():
    """The visible tests name the likely mistake."""
    results = run_tests(LESSON, {"receptive_fields": MUTANTS["receptive_fields"]["jump updated before size"]})
    assert "THEN its stride doubles the jump" in results["test_receptive_fields"]
    results = run_tests(LESSON, {"input_window": MUTANTS["input_window"]["padding not subtracted"]})
    assert "subtract the padding" in results["test_input_window"]
    results = run_tests(LESSON, {"gradient_window": MUTANTS["gradient_window"]["only channel 0 of the input"]})
    assert "ANY input channel" in results["test_gradient_window"]


def test_visible_tests_catch_the_common_mistakes():
    """Each of these mistakes fails a visible test (all a self-learner sees), with a hint at the cause."""
    for function, label, words in [
            ("input_window", "paddings not scaled by the jump", "do not add up the paddings"),
            ("gradient_window", "output channel ignored (always channel 0)", "output channel c included")]:
        results = run_tests(LESSON, {function: MUTANTS[function][label]})
        assert words in (results[f"test_{function}"] or ""), (label, results[f"test_{function}"])
