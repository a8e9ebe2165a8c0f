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
        "confusion_matrix": '''
import torch
def confusion_matrix(predictions, labels, num_classes):
    if len(predictions) != len(labels):
        raise ValueError(f"lengths differ: {len(predictions)} predictions, {len(labels)} labels")
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)
    for p, t in zip(predictions.tolist(), labels.tolist()):
        for v in (p, t):
            if not 0 <= v < num_classes:
                raise ValueError(f"class index {v} is outside 0..{num_classes - 1}")
        cm[t, p] += 1
    return cm
''',
        "occlusion_map": '''
import torch
def occlusion_map(model, x, class_idx, patch=8, stride=4, fill=0.0):
    was_training = model.training
    model.eval()
    try:
        height, width = x.shape[-2:]
        maps = []
        for n in range(x.shape[0]):
            c = int(class_idx) if isinstance(class_idx, int) else int(class_idx[n])
            image = x[n:n + 1]
            with torch.no_grad():
                base = model(image)[0, c]
                rows = []
                for top in range(0, height - patch + 1, stride):
                    row = []
                    for left in range(0, width - patch + 1, stride):
                        covered = image.clone()
                        covered[:, :, top:top + patch, left:left + patch] = fill
                        row.append(base - model(covered)[0, c])
                    rows.append(torch.stack(row))
            maps.append(torch.stack(rows))
        return torch.stack(maps)
    finally:
        model.train(was_training)
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
        "confusion_matrix": '''
import torch
def confusion_matrix(predictions, labels, num_classes):
    p, t = predictions.long(), labels.long()
    if p.shape != t.shape:
        raise ValueError(f"predictions {tuple(p.shape)} and labels {tuple(t.shape)} differ in shape")
    both = torch.cat([p, t])
    outside = (both < 0) | (both >= num_classes)
    if outside.any():
        raise ValueError(f"value {both[outside][0].item()} is not a class index for num_classes={num_classes}")
    cm = torch.zeros(num_classes, num_classes, dtype=torch.long, device=p.device)
    return cm.index_put_((t, p), torch.ones_like(t), accumulate=True)
''',
        "occlusion_map": '''
import torch
def occlusion_map(model, x, class_idx, patch=8, stride=4, fill=0.0):
    model.eval()
    n, c, h, w = x.shape
    rows, cols = (h - patch) // stride + 1, (w - patch) // stride + 1
    masks = torch.zeros(rows * cols, 1, h, w, dtype=torch.bool, device=x.device)
    for k in range(rows * cols):
        i, j = divmod(k, cols)
        masks[k, :, i * stride:i * stride + patch, j * stride:j * stride + patch] = True
    cls = torch.as_tensor(class_idx).long().to(x.device)
    if cls.ndim == 0:
        cls = cls.repeat(n)
    with torch.inference_mode():
        base = model(x).gather(1, cls[:, None])[:, 0]
        covered = torch.where(masks[None], torch.tensor(fill, dtype=x.dtype, device=x.device), x[:, None])
        scores = model(covered.flatten(0, 1)).view(n, rows * cols, -1)
        drop = base[:, None] - scores.gather(2, cls.view(n, 1, 1).expand(n, rows * cols, 1))[..., 0]
    return drop.view(n, rows, cols).clone()
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


_CM = '''
import torch
def confusion_matrix(predictions, labels, num_classes):
    {check_length}
    {check_range}
    {count}
'''
_CM_LENGTH = ("if len(predictions) != len(labels):\n"
              "        raise ValueError(f'{len(predictions)} predictions but {len(labels)} labels')")
_CM_RANGE = ("for v in (predictions, labels):\n"
             "        if ((v < 0) | (v >= num_classes)).any():\n"
             "            raise ValueError(f'{v[(v < 0) | (v >= num_classes)][0].item()} outside [0, {num_classes})')")
_CM_COUNT = ("k = num_classes\n"
             "    return torch.bincount({first}.long() * k + {second}.long(), minlength=k * k).view(k, k)")


_CM_RIGHT = _CM_COUNT.format(first="labels", second="predictions")


def _cm(check_length=_CM_LENGTH, check_range=_CM_RANGE, count=_CM_RIGHT):
    return _CM.format(check_length=check_length, check_range=check_range, count=count)


_OCC = '''
import torch
def occlusion_map(model, x, class_idx, patch=8, stride=4, fill=0.0):
    {mode}
    n, _, h, w = x.shape
    rows, cols = {rows}, {cols}
    idx = torch.as_tensor(class_idx).long()
    if idx.ndim == 0:
        idx = idx.expand(n)
    take = torch.arange(n)
    score = {score}
    with torch.no_grad():
        base = score(x)
        out = torch.zeros(n, rows, cols, dtype=base.dtype)
        for i in range(rows):
            for j in range(cols):
                covered = x.clone()
                top, left = {top}, {left}
                covered[:, :, top:top + {size}, left:left + {size}] = {fill}
                out[:, i, j] = {drop}
    return out
'''


def _occ(mode="model.eval()", rows="(h - patch) // stride + 1", cols="(w - patch) // stride + 1",
         score="lambda z: model(z)[take, idx]", top="i * stride", left="j * stride", size="patch", fill="fill",
         drop="base - score(covered)"):
    return _OCC.format(mode=mode, rows=rows, cols=cols, score=score, top=top, left=left, size=size, fill=fill,
                       drop=drop)


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
    "confusion_matrix": {
        "transposed (row = prediction, column = true label)": _cm(
            count=_CM_COUNT.format(first="predictions", second="labels")),
        "size taken from the largest value present, not num_classes": _cm(count=(
            "k = int(max(predictions.max(), labels.max())) + 1\n"
            "    return torch.bincount(labels.long() * k + predictions.long(), minlength=k * k).view(k, k)")),
        "float counts (one-hot vectors summed)": _cm(count=(
            "import torch.nn.functional as F\n"
            "    return F.one_hot(labels.long(), num_classes).T.float() @ F.one_hot(predictions.long(), num_classes).float()")),
        "no range check (a value of num_classes lands in the next row)": _cm(check_range="pass", count=(
            "k = num_classes\n"
            "    counts = torch.bincount(labels.long() * k + predictions.long(), minlength=k * k)\n"
            "    return counts[:k * k].view(k, k)")),
        "lengths not checked (zip pairs up the shorter)": _cm(check_length="pass", count=(
            "cm = torch.zeros(num_classes, num_classes, dtype=torch.int64)\n"
            "    for p, t in zip(predictions.tolist(), labels.tolist()):\n"
            "        cm[t, p] += 1\n"
            "    return cm")),
    },
    "occlusion_map": {
        "square starts one pixel late (i*stride + 1)": _occ(top="i * stride + 1", left="j * stride + 1"),
        "square patch + 1 pixels wide": _occ(size="patch + 1"),
        "one position too few per axis (range(0, H - patch, stride))": _occ(
            rows="len(range(0, h - patch, stride))", cols="len(range(0, w - patch, stride))"),
        "one position too many per axis": _occ(rows="(h - patch) // stride + 2", cols="(w - patch) // stride + 2"),
        "left in training mode": _occ(mode="pass"),
        "drop of the softmax probability": _occ(score="lambda z: model(z).softmax(dim=1)[take, idx]"),
        "fill ignored (always zero)": _occ(fill="0.0"),
        "sign reversed (covered minus original)": _occ(drop="score(covered) - base"),
        "class 0 for everyone when given a tensor": _occ(score="lambda z: model(z)[take, idx[0]]"),
    },
}





def test_failure_messages_teach():
    results = run_tests(LESSON, {"feature_maps": MUTANTS["feature_maps"]["hook never removed"]})
    assert "handle.remove()" in results["test_feature_maps"]
    results = run_tests(LESSON, {"grad_cam": MUTANTS["grad_cam"]["division without a guard (NaN for all-zero maps)"]})
    assert "NaN" in results["test_grad_cam_hidden"]


def test_visible_tests_name_the_common_mistakes():
    """A learner without hidden tests learns from the visible ones which mistake they made, and why."""
    expected = {
        ("confusion_matrix", "transposed (row = prediction, column = true label)"): "transposed",
        ("confusion_matrix", "float counts (one-hot vectors summed)"): "int64",
        ("confusion_matrix", "size taken from the largest value present, not num_classes"): "num_classes x num_classes",
        ("confusion_matrix", "no range check (a value of num_classes lands in the next row)"): "ValueError",
        ("occlusion_map", "square starts one pixel late (i*stride + 1)"): "starts one pixel late",
        ("occlusion_map", "square patch + 1 pixels wide"): "patch + 1 pixels wide",
        ("occlusion_map", "one position too few per axis (range(0, H - patch, stride))"): "H' = (H - patch) // stride + 1",
        ("occlusion_map", "left in training mode"): "model.eval()",
        ("occlusion_map", "drop of the softmax probability"): "before softmax",
        ("occlusion_map", "fill ignored (always zero)"): "fill=0.5",
        ("occlusion_map", "sign reversed (covered minus original)"): "sign is reversed",
        ("feature_maps", "slices the top-level Sequential up to the layer's index"): "inside a block",
        ("feature_maps", "hook removed only when the forward pass succeeds"): "finally:",
        ("saliency_map", "left in training mode"): "model.eval()",
        ("grad_cam", "weights not spatially averaged (gradient x activation)"): "not averaged over space",
        ("grad_cam", "division without a guard (NaN for all-zero maps)"): "NaN",
        ("grad_cam", "class 0 when class_idx is None"): "scores.argmax(1)",
        ("grad_cam", "nearest-neighbour upsampling"): "mode='bilinear'",
        ("grad_cam", "min-max scaling"): "maximum only",
        ("grad_cam", "left in training mode"): "model.eval()",
    }
    # One mistake per function in each run: each function's tests call only it.
    per_function: dict[str, list] = {}
    for (function, label), words in expected.items():
        per_function.setdefault(function, []).append((label, words))
    for k in range(max(len(v) for v in per_function.values())):
        chosen = {f: v[k] for f, v in per_function.items() if k < len(v)}
        results = run_tests(LESSON, {f: MUTANTS[f][label] for f, (label, _) in chosen.items()})
        for function, (label, words) in chosen.items():
            message = results[f"test_{function}"]
            assert message is not None and words in message, (label, message)
