"""Lesson 09: the tests accept every correct implementation and reject plausible wrong ones.

Each mutant is a mistake learners make; each must fail its function's hidden tests.
Each alternative is a different correct way to write the function; it must pass every
test cell of the lesson.
"""


from tests.notebook_runner import run_tests

LESSON = "09_inside_the_cnn"

ALTERNATIVES = {
    "dict capture, per-image saliency loop, hooks on forward and tensor": {
        "feature_maps": '''
import torch
def feature_maps(model, layer, x):
    store = {}
    handle = layer.register_forward_hook(lambda m, i, o: store.__setitem__("out", o))
    try:
        with torch.inference_mode():
            model(x)
    finally:
        handle.remove()
    return store["out"].clone()
''',
        "saliency_map": '''
import torch
def saliency_map(model, x, class_idx):
    model.eval()
    if isinstance(class_idx, int):
        class_idx = [class_idx] * x.shape[0]
    maps = []
    for n in range(x.shape[0]):
        xn = x[n:n + 1].clone().detach().requires_grad_()
        score = model(xn)[0, int(class_idx[n])]
        model.zero_grad()
        score.backward()
        maps.append(xn.grad[0].abs().max(dim=0)[0])
    return torch.stack(maps)
''',
        "grad_cam": '''
import torch
import torch.nn.functional as F
def grad_cam(model, layer, x, class_idx=None):
    model.eval()
    saved = {}
    def fwd(m, i, o):
        saved["a"] = o
        o.register_hook(lambda g: saved.__setitem__("g", g))
    h = layer.register_forward_hook(fwd)
    try:
        x = x.clone().requires_grad_(True)
        scores = model(x)
    finally:
        h.remove()
    if class_idx is None:
        class_idx = scores.argmax(dim=1)
    elif isinstance(class_idx, int):
        class_idx = torch.full((x.shape[0],), class_idx)
    model.zero_grad()
    scores[torch.arange(x.shape[0]), class_idx].sum().backward()
    a, g = saved["a"].detach(), saved["g"]
    cam = torch.relu(torch.einsum("nk,nkhw->nhw", g.mean(dim=(2, 3)), a))
    cam = F.interpolate(cam[:, None], size=tuple(x.shape[2:]), mode="bilinear", align_corners=False)[:, 0]
    out = torch.zeros_like(cam)
    for n in range(cam.shape[0]):
        m = cam[n].max()
        if m > 0:
            out[n] = cam[n] / m
    return out
''',
    },
    "list capture; torch.func-free jacobian via one backward; vectorised normalisation": {
        "feature_maps": '''
def feature_maps(model, layer, x):
    outputs = []
    h = layer.register_forward_hook(lambda module, args, out: outputs.append(out.detach()))
    try:
        model(x)
    finally:
        h.remove()
    return outputs[-1]
''',
        "saliency_map": '''
import torch
def saliency_map(model, x, class_idx):
    was = model.training
    model.eval()
    inp = x.detach().clone().requires_grad_(True)
    out = model(inp)
    if not torch.is_tensor(class_idx):
        class_idx = torch.tensor([class_idx] * len(x))
    sel = torch.nn.functional.one_hot(class_idx.long(), out.shape[1]).to(out.dtype)
    (out * sel).sum().backward()
    return inp.grad.abs().amax(1)
''',
        "grad_cam": '''
import torch
import torch.nn.functional as F
def grad_cam(model, layer, x, class_idx=None):
    model.eval()
    acts = []
    handle = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    try:
        logits = model(x.requires_grad_(False).clone().requires_grad_(True))
    finally:
        handle.remove()
    if class_idx is None:
        target = logits.argmax(1)
    else:
        target = torch.as_tensor(class_idx).reshape(-1).expand(len(x))
    grads = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), acts[0])[0]
    cam = F.relu((grads.mean((-1, -2))[..., None, None] * acts[0]).sum(1, keepdim=True))
    cam = F.interpolate(cam, x.shape[-2:], mode="bilinear", align_corners=False).squeeze(1).detach()
    peak = cam.amax(dim=(1, 2), keepdim=True)
    return cam / torch.where(peak > 0, peak, torch.ones_like(peak))
''',
    },
}

_FM = '''
import torch
def feature_maps(model, layer, x):
    box = []
    handle = layer.register_forward_hook(lambda m, i, o: box.append({what}))
    {body}
    return box[0]
'''
_FM_OK_BODY = '''try:
        with torch.no_grad():
            model(x)
    finally:
        handle.remove()'''

_SAL = '''
import torch
def saliency_map(model, x, class_idx):
    {mode}
    x = x.detach().clone().requires_grad_(True)
    scores = {scores}
    idx = torch.as_tensor(class_idx).long()
    if idx.ndim == 0:
        idx = idx.expand(len(x))
    {select}
    (g,) = torch.autograd.grad(chosen.sum(), x)
    return {reduce}
'''


def _sal(mode="model.eval()", scores="model(x)", select="chosen = scores.gather(1, idx.view(-1, 1))",
         reduce="g.abs().amax(dim=1)"):
    return _SAL.format(mode=mode, scores=scores, select=select, reduce=reduce)


_CAM = '''
import torch
import torch.nn.functional as F
def grad_cam(model, layer, x, class_idx=None):
    {mode}
    acts = []
    handle = layer.register_forward_hook(lambda m, i, o: acts.append(o))
    scores = model(x)
    {remove}
    idx = {pred} if class_idx is None else torch.as_tensor(class_idx).long()
    if idx.ndim == 0:
        idx = idx.expand(len(x))
    (g,) = torch.autograd.grad(scores.gather(1, idx.view(-1, 1)).sum(), acts[0])
    a = acts[0]
    cam = {combine}
    cam = F.interpolate(cam[:, None], size=x.shape[-2:], mode="{mode_up}"{align})[:, 0].detach()
    {normalise}
'''


def _cam(mode="model.eval()", remove="handle.remove()", pred="scores.argmax(1)",
         combine="F.relu((g.mean(dim=(2, 3), keepdim=True) * a).sum(1))", mode_up="bilinear",
         align=", align_corners=False",
         normalise="peak = cam.flatten(1).amax(1).view(-1, 1, 1)\n    "
                   "return torch.where(peak > 0, cam / peak.clamp_min(1e-30), torch.zeros_like(cam))"):
    return _CAM.format(mode=mode, remove=remove, pred=pred, combine=combine, mode_up=mode_up, align=align,
                       normalise=normalise)


MUTANTS = {
    "feature_maps": {
        "hook never removed": _FM.format(what="o.detach()", body="model(x)"),
        "returns the layer's input": _FM.format(what="i[0].detach()", body=_FM_OK_BODY),
        "returns the model's output": '''
def feature_maps(model, layer, x):
    return model(x).detach()
''',
        "slices the top-level Sequential up to the layer's index": '''
import torch
def feature_maps(model, layer, x):
    children = list(model.children())
    k = next((i for i, c in enumerate(children) if c is layer), len(children) - 1)
    with torch.no_grad():
        for c in children[:k + 1]:
            x = c(x)
    return x
''',
        "hook removed only when the forward pass succeeds": _FM.format(
            what="o.detach()", body="with torch.no_grad():\n        model(x)\n    handle.remove()"),
    },
    "saliency_map": {
        "no absolute value": _sal(reduce="g.amax(dim=1)"),
        "sum over channels instead of max": _sal(reduce="g.abs().sum(dim=1)"),
        "gradient of the softmax probability": _sal(scores="model(x).softmax(dim=1)"),
        "left in training mode": _sal(mode="pass"),
        "class 0 for everyone when given a tensor": _sal(
            select="chosen = scores[:, idx[0]]"),
        "mean over channels": _sal(reduce="g.abs().mean(dim=1)"),
    },
    "grad_cam": {
        "no ReLU": _cam(combine="(g.mean(dim=(2, 3), keepdim=True) * a).sum(1)"),
        "weights not spatially averaged (gradient x activation)": _cam(combine="F.relu((g * a).sum(1))"),
        "normalised by the batch's maximum, not per image": _cam(
            normalise="peak = cam.max()\n    return cam / peak if peak > 0 else cam"),
        "hooks left behind": _cam(remove="pass"),
        "division without a guard (NaN for all-zero maps)": _cam(
            normalise="return cam / cam.flatten(1).amax(1).view(-1, 1, 1)"),
        "class 0 when class_idx is None": _cam(pred="torch.zeros(len(x), dtype=torch.long)"),
        "nearest-neighbour upsampling": _cam(mode_up="nearest", align=""),
        "min-max scaling": _cam(normalise="lo = cam.flatten(1).amin(1).view(-1, 1, 1)\n    "
                                          "hi = cam.flatten(1).amax(1).view(-1, 1, 1)\n    "
                                          "return torch.where(hi > lo, (cam - lo) / (hi - lo).clamp_min(1e-30), "
                                          "torch.zeros_like(cam))"),
        "left in training mode": _cam(mode="pass"),
        "ReLU on the gradients instead of the map": _cam(
            combine="(F.relu(g).mean(dim=(2, 3), keepdim=True) * a).sum(1)"),
    },
}





def test_failure_messages_teach():
    results = run_tests(LESSON, {"feature_maps": MUTANTS["feature_maps"]["hook never removed"]})
    assert "handle.remove()" in results["test_feature_maps"]
    results = run_tests(LESSON, {"grad_cam": MUTANTS["grad_cam"]["division without a guard (NaN for all-zero maps)"]})
    assert "NaN" in results["test_grad_cam_hidden"]
