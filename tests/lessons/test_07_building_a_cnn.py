"""Lesson 07: the tests accept every correct implementation and reject plausible wrong ones.

Each mutant is a mistake learners make; each must fail its function's hidden tests
(the ones that decide the grade). Each alternative is a different correct way to
write the function; it must pass every test cell of the lesson.
"""

import pytest

from tests.notebook_runner import run_tests

LESSON = "07_building_a_cnn"

ALTERNATIVES = {
    "custom nn.Module, manual walks, SGD with momentum": {
        "build_seed_cnn": '''
import torch
from torch import nn
class _SeedCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, (3, 3), padding=(1, 1))
        self.conv2 = nn.Conv2d(4, 8, 3, padding="same")
        self.relu = nn.ReLU(inplace=True)   # one ReLU and one pool module, each called twice
        self.pool = nn.MaxPool2d(kernel_size=(2, 2))
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(2048, 10)
    def forward(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        return self.fc(self.flatten(x))
def build_seed_cnn():
    return _SeedCNN()
''',
        "count_parameters": '''
def count_parameters(model, trainable_only=True):
    unique = {}
    for _, p in model.named_parameters():
        unique[id(p)] = p
    return int(sum(p.numel() for p in unique.values() if p.requires_grad or not trainable_only))
''',
        "layer_shapes": '''
import torch
def layer_shapes(model, input_shape):
    """Without hooks: run the children one by one."""
    out, h = [], torch.zeros(*input_shape)
    with torch.no_grad():
        for child in model:
            h = child(h)
            out.append((child.__class__.__name__, tuple(int(s) for s in h.shape)))
    return out
''',
        "count_macs": '''
import torch
from torch import nn
def _walk(module, h):
    if isinstance(module, nn.Sequential):
        total = 0
        for child in module:
            h, m = _walk(child, h)
            total += m
        return h, total
    out = module(h)
    if isinstance(module, nn.Conv2d):
        n, f, ho, wo = out.shape
        kh, kw = module.kernel_size
        return out, n * f * ho * wo * (module.in_channels // module.groups) * kh * kw
    if isinstance(module, nn.Linear):
        return out, out.numel() // module.out_features * module.out_features * module.in_features
    return out, 0
def count_macs(model, input_shape):
    with torch.no_grad():
        return _walk(model, torch.zeros(input_shape))[1]
''',
        "overfit_batch": '''
import torch
from torch import nn
def overfit_batch(model, x, y, steps=200, lr=0.01):
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    losses = []
    for step in range(steps):
        logits = model(x)
        loss = criterion(logits, y)
        losses.append(float(loss.detach()))
        model.zero_grad()
        loss.backward()
        optimizer.step()
    return losses
''',
    },
    "Sequential from an OrderedDict, hooks by name, manual SGD": {
        "build_seed_cnn": '''
from collections import OrderedDict
from torch import nn
def build_seed_cnn():
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(in_channels=3, out_channels=4, kernel_size=3, stride=1, padding=1)),
        ("relu1", nn.ReLU()),
        ("pool1", nn.MaxPool2d(2, 2)),
        ("conv2", nn.Conv2d(4, 8, 3, 1, 1)),
        ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(2)),
        ("flatten", nn.Flatten(start_dim=1)),
        ("classifier", nn.Linear(8 * 16 * 16, 10)),
    ]))
''',
        "count_parameters": '''
def count_parameters(model, trainable_only=True):
    total = 0
    for p in model.parameters():
        if trainable_only and not p.requires_grad:
            continue
        total += p.numel()
    return total
''',
        "layer_shapes": '''
import torch
def layer_shapes(model, input_shape):
    found = {}
    handles = []
    def make_hook(index):
        def hook(module, args, output):
            found[index] = (type(module).__name__, tuple(output.size()))
        return hook
    for index, child in enumerate(model):
        handles.append(child.register_forward_hook(make_hook(index)))
    try:
        with torch.inference_mode():
            model(torch.zeros(input_shape))
    finally:
        while handles:
            handles.pop().remove()
    return [found[i] for i in sorted(found)]
''',
        "count_macs": '''
import math
import torch
from torch import nn
def count_macs(model, input_shape):
    counts = []
    def hook(module, inputs, output):
        if isinstance(module, nn.Conv2d):
            counts.append(output.numel() * module.weight[0].numel())
        else:
            counts.append(math.prod(output.shape) * module.weight.shape[1])
    handles = [m.register_forward_hook(hook) for m in model.modules() if type(m) in (nn.Conv2d, nn.Linear)]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
    return sum(counts)
''',
        "overfit_batch": '''
import torch
import torch.nn.functional as F
def overfit_batch(model, x, y, steps=200, lr=0.01):
    params = [p for p in model.parameters() if p.requires_grad]
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y, reduction="mean")
        losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            for p in params:
                p -= lr * p.grad
                p.grad = None
    return losses
''',
    },
}

_SEED_LAYERS = '''
def build_seed_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2048, 10))
'''

MUTANTS = {
    "build_seed_cnn": {
        "padding=0 (and the Linear sized for the 14x14 maps it gives)": '''
from torch import nn
def build_seed_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(8 * 14 * 14, 10))
''',
        "missing the second ReLU": '''
from torch import nn
def build_seed_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2048, 10))
''',
        "no ReLU at all (the pools are the only nonlinearity left)": '''
from torch import nn
def build_seed_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                         nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2048, 10))
''',
        "a log-softmax after the classifier (returns log-probabilities)": '''
from torch import nn
def build_seed_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2048, 10), nn.LogSoftmax(dim=1))
''',
        "a softmax inside a custom forward": '''
import torch
from torch import nn
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                                      nn.Conv2d(4, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.fc = nn.Linear(2048, 10)
    def forward(self, x):
        return torch.softmax(self.fc(self.features(x)), dim=1)
def build_seed_cnn():
    return _Net()
''',
        "a softmax after the classifier (returns probabilities, not logits)": '''
from torch import nn
def build_seed_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2048, 10), nn.Softmax(dim=1))
''',
        "the same model object on every call": '''
from torch import nn
_MODEL = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                       nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2048, 10))
def build_seed_cnn():
    return _MODEL
''',
        "ReLU in the forward pass as a function, modules missing, and one skipped": '''
import torch
from torch import nn
class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 8, 3, padding=1)
        self.pool, self.fc = nn.MaxPool2d(2), nn.Linear(2048, 10)
    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(self.conv2(x))
        return self.fc(x.flatten(1))
def build_seed_cnn():
    return _Net()
''',
        "average pooling instead of max pooling": '''
from torch import nn
def build_seed_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                         nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(2048, 10))
''',
        "classifier without bias (20,888 parameters)": '''
from torch import nn
def build_seed_cnn():
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(4, 8, 3, padding=1),
                         nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(2048, 10, bias=False))
''',
    },
    "count_parameters": {
        "counts buffers too (state_dict)": '''
def count_parameters(model, trainable_only=True):
    return sum(t.numel() for t in model.state_dict().values())
''',
        "ignores trainable_only": '''
def count_parameters(model, trainable_only=True):
    return sum(p.numel() for p in model.parameters())
''',
        "trainable_only inverted": '''
def count_parameters(model, trainable_only=True):
    return sum(p.numel() for p in model.parameters() if p.requires_grad != trainable_only or not trainable_only)
''',
        "shared tensors counted once per use": '''
def count_parameters(model, trainable_only=True):
    params = model.named_parameters(remove_duplicate=False)
    return sum(p.numel() for _, p in params if p.requires_grad or not trainable_only)
''',
        "counts only the direct children's own parameters (misses nested blocks)": '''
def count_parameters(model, trainable_only=True):
    total = 0
    for child in [model, *model.children()]:
        total += sum(p.numel() for p in child.parameters(recurse=False) if p.requires_grad or not trainable_only)
    return total
''',
        "counts weights only, no biases": '''
def count_parameters(model, trainable_only=True):
    return sum(p.numel() for n, p in model.named_parameters()
               if not n.endswith("bias") and (p.requires_grad or not trainable_only))
''',
        "returns a tensor": '''
import torch
def count_parameters(model, trainable_only=True):
    return torch.tensor(sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only))
''',
    },
    "layer_shapes": {
        "hooks left behind": '''
import torch
def layer_shapes(model, input_shape):
    shapes = []
    for child in model:
        child.register_forward_hook(lambda m, i, o: shapes.append((type(m).__name__, tuple(o.shape))))
    with torch.no_grad():
        model(torch.zeros(input_shape))
    return shapes
''',
        "batch axis omitted": '''
import torch
def layer_shapes(model, input_shape):
    shapes = []
    handles = [c.register_forward_hook(lambda m, i, o: shapes.append((type(m).__name__, tuple(o.shape[1:]))))
               for c in model]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
    return shapes
''',
        "hooks on model.modules() (the model itself and nested layers too)": '''
import torch
def layer_shapes(model, input_shape):
    shapes = []
    handles = [c.register_forward_hook(lambda m, i, o: shapes.append((type(m).__name__, tuple(o.shape))))
               for c in model.modules()]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
    return shapes
''',
        "records the input shape instead of the output shape": '''
import torch
def layer_shapes(model, input_shape):
    shapes = []
    handles = [c.register_forward_hook(lambda m, i, o: shapes.append((type(m).__name__, tuple(i[0].shape))))
               for c in model]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
    return shapes
''',
        "hooks removed only on the last child": '''
import torch
def layer_shapes(model, input_shape):
    shapes = []
    for c in model:
        handle = c.register_forward_hook(lambda m, i, o: shapes.append((type(m).__name__, tuple(o.shape))))
    with torch.no_grad():
        model(torch.zeros(input_shape))
    handle.remove()
    return shapes
''',
        "str(module) instead of the class name": '''
import torch
def layer_shapes(model, input_shape):
    shapes = []
    handles = [c.register_forward_hook(lambda m, i, o: shapes.append((str(m), tuple(o.shape)))) for c in model]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
    return shapes
''',
        "switches the model to eval() and leaves it there": '''
import torch
def layer_shapes(model, input_shape):
    shapes = []
    handles = [c.register_forward_hook(lambda m, i, o: shapes.append((type(m).__name__, tuple(o.shape))))
               for c in model]
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in handles:
            h.remove()
    return shapes
''',
    },
    "count_macs": {
        "bias additions counted": '''
import torch
from torch import nn
def count_macs(model, input_shape):
    total = []
    def hook(m, i, o):
        per = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] if isinstance(m, nn.Conv2d) else m.in_features
        total.append(o.numel() * (per + (1 if m.bias is not None else 0)))
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in hs:
            h.remove()
    return sum(total)
''',
        "groups ignored": '''
import torch
from torch import nn
def count_macs(model, input_shape):
    total = []
    def hook(m, i, o):
        per = m.in_channels * m.kernel_size[0] * m.kernel_size[1] if isinstance(m, nn.Conv2d) else m.in_features
        total.append(o.numel() * per)
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in hs:
            h.remove()
    return sum(total)
''',
        "stride ignored (output positions = input positions)": '''
import torch
from torch import nn
def count_macs(model, input_shape):
    total = []
    def hook(m, i, o):
        if isinstance(m, nn.Conv2d):
            n, _, h, w = i[0].shape
            total.append(n * m.out_channels * (h + 2 * m.padding[0] - m.dilation[0] * (m.kernel_size[0] - 1))
                         * (w + 2 * m.padding[1] - m.dilation[1] * (m.kernel_size[1] - 1))
                         * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])
        else:
            total.append(o.numel() * m.in_features)
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in hs:
            h.remove()
    return sum(total)
''',
        "one image only (batch size ignored)": '''
import torch
from torch import nn
def count_macs(model, input_shape):
    total = []
    def hook(m, i, o):
        per = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] if isinstance(m, nn.Conv2d) else m.in_features
        total.append(o[0].numel() * per)
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in hs:
            h.remove()
    return sum(total)
''',
        "direct children only (nested blocks missed)": '''
import torch
from torch import nn
def count_macs(model, input_shape):
    total = []
    def hook(m, i, o):
        per = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] if isinstance(m, nn.Conv2d) else m.in_features
        total.append(o.numel() * per)
    hs = [m.register_forward_hook(hook) for m in [model, *model.children()] if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in hs:
            h.remove()
    return sum(total)
''',
        "hooks left behind": '''
import torch
from torch import nn
def count_macs(model, input_shape):
    total = []
    def hook(m, i, o):
        per = (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1] if isinstance(m, nn.Conv2d) else m.in_features
        total.append(o.numel() * per)
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_hook(hook)
    with torch.no_grad():
        model(torch.zeros(input_shape))
    return sum(total)
''',
        "Linear counted as in_features * out_features per batch item (wrong for inputs with more axes)": '''
import torch
from torch import nn
def count_macs(model, input_shape):
    total = []
    def hook(m, i, o):
        if isinstance(m, nn.Conv2d):
            total.append(o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1])
        else:
            total.append(o.shape[0] * m.in_features * m.out_features)
    hs = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for h in hs:
            h.remove()
    return sum(total)
''',
    },
    "overfit_batch": {
        "records the loss after the step": '''
import torch
import torch.nn.functional as F
def overfit_batch(model, x, y, steps=200, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        with torch.no_grad():
            losses.append(F.cross_entropy(model(x), y).item())
    return losses
''',
        "never zeroes the gradients": '''
import torch
import torch.nn.functional as F
def overfit_batch(model, x, y, steps=200, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return losses
''',
        "never zeroes the gradients (SGD)": '''
import torch
import torch.nn.functional as F
def overfit_batch(model, x, y, steps=200, lr=0.01):
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return losses
''',
        "learning rate hard-coded": '''
import torch
import torch.nn.functional as F
def overfit_batch(model, x, y, steps=200, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return losses
''',
        "returns loss tensors instead of floats": '''
import torch
import torch.nn.functional as F
def overfit_batch(model, x, y, steps=200, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.detach())
        loss.backward()
        opt.step()
    return losses
''',
        "trains a copy of the model": '''
import copy
import torch
import torch.nn.functional as F
def overfit_batch(model, x, y, steps=200, lr=0.01):
    model = copy.deepcopy(model)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return losses
''',
        "nll_loss on logits (no log-softmax)": '''
import torch
import torch.nn.functional as F
def overfit_batch(model, x, y, steps=200, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.nll_loss(model(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return losses
''',
        "summed instead of averaged over the batch": '''
import torch
import torch.nn.functional as F
def overfit_batch(model, x, y, steps=200, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y, reduction="sum")
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return losses
''',
        "one step too few": '''
import torch
import torch.nn.functional as F
def overfit_batch(model, x, y, steps=200, lr=0.01):
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(1, steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        losses.append(loss.item())
        loss.backward()
        opt.step()
    return losses
''',
    },
}





def test_failure_messages_teach():
    """The likely mistakes are named in the messages, not just reported as wrong."""
    results = run_tests(LESSON, {"layer_shapes": MUTANTS["layer_shapes"]["batch axis omitted"]})
    assert "batch axis is missing" in results["test_layer_shapes"]
    results = run_tests(LESSON, {"layer_shapes": MUTANTS["layer_shapes"]["hooks left behind"]})
    assert "left hooks behind" in results["test_layer_shapes"] and "handle.remove()" in results["test_layer_shapes"]
    results = run_tests(LESSON, {"overfit_batch": MUTANTS["overfit_batch"]["never zeroes the gradients"]})
    assert "zero_grad" in results["test_overfit_batch_hidden"]
    results = run_tests(LESSON, {"overfit_batch": MUTANTS["overfit_batch"]["records the loss after the step"]})
    assert "before optimizer.step()" in results["test_overfit_batch"]
    results = run_tests(LESSON, {"build_seed_cnn": MUTANTS["build_seed_cnn"]["the same model object on every call"]})
    assert "new model" in results["test_build_seed_cnn_hidden"]
    seed = MUTANTS["build_seed_cnn"]
    for label, words in [("no ReLU at all (the pools are the only nonlinearity left)", ["without any ReLU", "nn.ReLU()"]),
                         ("missing the second ReLU", ["after the second convolution"]),
                         ("a softmax after the classifier (returns probabilities, not logits)",
                          ["probabilities, not logits", "F.cross_entropy"]),
                         ("average pooling instead of max pooling", ["nn.MaxPool2d(2)"]),
                         ("the same model object on every call", ["share their parameters"])]:
        message = run_tests(LESSON, {"build_seed_cnn": seed[label]})["test_build_seed_cnn"]
        assert message and all(w in message for w in words), (label, message)


@pytest.mark.parametrize("function,label", [(f, m) for f in MUTANTS for m in MUTANTS[f]])
def test_visible_tests_catch_the_mutant(function, label):
    """Issue 14, item 9: a learner without the hidden tests still hears about each of these mistakes."""
    from tests.notebook_runner import results_for

    results = results_for(LESSON, function, run_tests(LESSON, {function: MUTANTS[function][label]}))
    visible = {k: v for k, v in results.items() if "hidden" not in k}
    assert any(v for v in visible.values()), f"{label!r} passes every visible test of {function}"


def test_architecture_explorer_reports_and_explains():
    """The explorer's logic is a plain function: a table for valid settings, a ValueError that explains otherwise."""
    import contextlib
    import io

    from tests.notebook_runner import load

    namespace = {"__name__": "__main__"}
    cells = load(LESSON).cells
    for cell in cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta and (meta.get("solution") or meta.get("grade_id") == "setup"):
            exec(cell.source, namespace)
    report_cell = next(c.source for c in cells if c.cell_type == "code" and "def seed_like_report(" in c.source)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        exec(report_cell, namespace)
    assert "20,898" in printed.getvalue() and "757,760" in printed.getvalue()
    report = namespace["seed_like_report"]
    assert "Linear(1568, 10)" in report(padding=0)
    with pytest.raises(ValueError, match="smaller than its 7x7 kernel"):
        report(kernel_size=7, padding=0, image_size=16)
    with pytest.raises(ValueError, match="too small for a 2x2 max pool"):
        report(kernel_size=4, padding=0, image_size=4)
