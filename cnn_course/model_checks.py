"""Checks for exercises whose answer is a model, or that act on a model (lessons 07 on).

``checks.call_learner`` deep-copies its arguments, which is right for arrays but hides
what a function did to a model (a forward hook left behind, weights that were or were
not trained). The helpers here call the learner's function on the very objects the test
holds and then inspect them; failures are reported as ``checks.CheckFailed`` with a
sentence that says what to fix.

The torch primitives used for judging are bound at import time (the setup cell imports
this module before any learner code runs).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .checks import CheckFailed, LearnerError, _learner_frame, describe_call

_torch_equal = torch.equal
_clone = torch.Tensor.clone
_detach = torch.Tensor.detach
_isinstance = isinstance
_type = type


def _fail(message: str) -> None:
    __tracebackhide__ = True
    raise CheckFailed(message)


def call_on(fn: Callable, *args: Any, name: str | None = None, **kwargs: Any) -> Any:
    """Call the learner's ``fn`` on the caller's own objects (no copies), reporting its exceptions as theirs.

    Tensors among the arguments must come back unchanged (inputs are never modified in
    place); modules are passed as they are, so the test can inspect them afterwards.
    """
    __tracebackhide__ = True
    name = name or getattr(fn, "__name__", "your function")
    if not callable(fn):
        _fail(f"{name} is not a function (it is {fn!r}); did a cell above fail to run?")
    tensors = [(i, a, _clone(_detach(a))) for i, a in enumerate(list(args) + list(kwargs.values()))
               if _isinstance(a, torch.Tensor)]
    try:
        result = fn(*args, **kwargs)
    except NotImplementedError:
        raise LearnerError(f"{name} is not implemented yet: replace `raise NotImplementedError()` "
                           "with your code") from None
    except Exception as exc:
        message = f"your {name} raised {_type(exc).__name__}: {exc}\n  while computing {describe_call(name, args, kwargs)}"
        where = _learner_frame(exc, fn)
        if where:
            message += f"\n  at {where}"
        raise LearnerError(message) from exc
    for i, after, before in tensors:
        if after.shape != before.shape or not _torch_equal(_detach(after), before):
            _fail(f"{name} modified its input (argument {i + 1}, a tensor) in place; work on a copy instead")
    return result


# --------------------------------------------------------------------------- models the learner builds

class Remote:
    """A model that lives in another process: the grader's handle on a model the learner's code built.

    The questions below (``describe``, ``forward``...) are asked where the model is, and
    their answers are data. Tests that ask them work the same on a model in the notebook.
    """

    def ask(self, question: str, *args, **kwargs):
        raise NotImplementedError


QUESTIONS: dict[str, Callable] = {}


def _question(fn: Callable) -> Callable:
    """Answered where the model is: here for a model in this process, there for a :class:`Remote` one."""
    QUESTIONS[fn.__name__] = fn

    @functools.wraps(fn)
    def ask(model, *args, **kwargs):
        if _isinstance(model, Remote):
            return model.ask(fn.__name__, *args, **kwargs)
        return fn(model, *args, **kwargs)

    return ask


@_question
def describe(model) -> dict:
    """What a test may know about ``model`` without running it: whether it is an nn.Module, its class, its
    parameters (name, shape, requires_grad), its state dict's entries (name, shape), its children's class names
    and whether it has a batch-norm layer."""
    if not _isinstance(model, nn.Module):
        return {"module": False, "type": f"{_type(model).__module__}.{_type(model).__qualname__}"}
    return {"module": True, "class": _type(model).__name__,
            "parameters": [(n, tuple(p.shape), bool(p.requires_grad)) for n, p in model.named_parameters()],
            "state": [(k, tuple(v.shape)) for k, v in model.state_dict().items()],
            "children": [_type(m).__name__ for m in model.children()],
            "batchnorm": any(_isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())}


def _run_model(model, x, name: str = "the model"):
    try:
        return model(x)
    except Exception as exc:
        raise LearnerError(f"{name} raised {_type(exc).__name__}: {exc}\n  while computing {name}(x) for x of "
                           f"shape {tuple(x.shape)}") from exc


@_question
def forward(model, x: torch.Tensor, train: bool = False, state: dict | None = None):
    """``model(x)`` without gradients, in training or eval mode (put back afterwards), after loading ``state``
    (a state dict) when one is given."""
    if state is not None:
        model.load_state_dict(state)
    was = model.training
    model.train(train)
    try:
        with torch.no_grad():
            return _run_model(model, x)
    finally:
        model.train(was)


_SETTINGS = ("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups", "padding_mode",
             "ceil_mode", "in_features", "out_features")


@_question
def leaf_calls(model, x: torch.Tensor) -> list:
    """The layers (modules without children) in the order ``model(x)`` calls them, in eval mode without
    gradients: (name in the model, class name, settings such as kernel_size and whether it has a bias)."""
    names = {id(m): n for n, m in model.named_modules(remove_duplicate=False)}
    calls, handles = [], []
    for module in model.modules():
        if not list(module.children()):
            handles.append(module.register_forward_hook(lambda m, i, o: calls.append(m)))
    was = model.training
    try:
        model.eval()
        with torch.no_grad():
            _run_model(model, x)
    finally:
        model.train(was)
        for handle in handles:
            handle.remove()
    out = []
    for m in calls:
        settings = {k: getattr(m, k) for k in _SETTINGS if hasattr(m, k)}
        settings["bias"] = getattr(m, "bias", None) is not None
        out.append((names.get(id(m), "?"), _type(m).__name__, settings))
    return out


@_question
def shares_parameters(model, other) -> bool:
    """Whether two models hold any parameter tensor in common."""
    return bool({p.data_ptr() for p in model.parameters()} & {p.data_ptr() for p in other.parameters()})


@_question
def gradient_sums(model, x: torch.Tensor, y: torch.Tensor) -> dict:
    """One training-mode forward and backward pass of the cross-entropy on (x, y), gradients cleared first:
    the logits, and the sum of |gradient| of each parameter (None where it got none)."""
    model.train()
    model.zero_grad()
    logits = _run_model(model, x)
    torch.nn.functional.cross_entropy(logits, y).backward()
    return {"logits": _detach(logits),
            "gradients": {n: None if p.grad is None else float(p.grad.abs().sum()) for n, p in model.named_parameters()}}


@_question
def predictions(model, images: torch.Tensor, mean, std, checkpoint: str | None = None,
                batch_size: int = 500) -> torch.Tensor:
    """The class ``model`` predicts for each uint8 image (normalised with ``mean`` and ``std`` per channel), in
    eval mode, after loading the state dict saved in the file ``checkpoint`` (beside the notebook) when given."""
    import os

    if checkpoint is not None:
        if not os.path.isfile(checkpoint):
            _fail(f"no {checkpoint} beside the notebook: train in full mode and submit the file with it")
        try:
            model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True))
        except Exception as exc:  # noqa: BLE001 - the learner's file, whatever is wrong with it
            _fail(f"{checkpoint} does not load into build_model(): {_type(exc).__name__}: {str(exc)[:300]}")
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    model.to(device)
    mean = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(std, device=device).view(1, 3, 1, 1)
    model.eval()
    with torch.no_grad():
        return torch.cat([_run_model(model, (images[i:i + batch_size].to(device).float() / 255 - mean) / std)
                          .float().argmax(1).cpu() for i in range(0, len(images), batch_size)])


# --------------------------------------------------------------------------- model state

def _hook_tables(model: nn.Module):
    """(description, number of hooks) for each hook table of ``model``, its submodules, and the global ones."""
    for module_name, module in model.named_modules(remove_duplicate=False):
        for attr in ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks"):
            hooks = getattr(module, attr, None) or {}
            yield f"{attr.strip('_').replace('_', ' ')} on {module_name or 'the model'} ({_type(module).__name__})", len(hooks)
    from torch.nn.modules import module as _module_mod
    for attr in ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                 "_global_backward_pre_hooks"):
        yield f"global {attr.strip('_').replace('_', ' ')}", len(getattr(_module_mod, attr, None) or {})


def left_behind(*args, **kwargs) -> None:
    """Stands in, in the grader, for a hook the learner's function left on its copy of a model."""


def hooks_on(model: nn.Module) -> list[str]:
    """Descriptions of every hook registered on ``model``, its submodules, or globally on all modules."""
    return [f"{n} {description}" for description, n in _hook_tables(model) if n]


def hook_count(model: nn.Module) -> int:
    """How many hooks are registered on ``model``, its submodules, or globally (compare before and after a call)."""
    return sum(n for _, n in _hook_tables(model))


def snapshot(model: nn.Module) -> dict:
    """What a function that only inspects ``model`` must leave as it was: tensors, modes, structure."""
    return {
        "state": {k: _clone(_detach(v)) for k, v in model.state_dict(keep_vars=True).items()},
        "training": [(n, m.training) for n, m in model.named_modules(remove_duplicate=False)],
        "structure": [(n, _type(m)) for n, m in model.named_modules(remove_duplicate=False)],
        "requires_grad": [(n, p.requires_grad) for n, p in model.named_parameters(remove_duplicate=False)],
    }


def expect_no_hooks(model: nn.Module, what: str) -> None:
    """No forward/backward hooks may remain on ``model`` after ``what``."""
    __tracebackhide__ = True
    left = hooks_on(model)
    if left:
        _fail(f"{what} left hooks behind: {'; '.join(left)}\n  -- keep the handle that register_forward_hook "
              "returns and call handle.remove() when you are done (a try/finally block removes them even "
              "when the forward pass fails)")


def expect_unchanged(model: nn.Module, before: dict, what: str) -> None:
    """``model`` must match ``before`` (a ``snapshot``): same modules, modes, flags and tensor values."""
    __tracebackhide__ = True
    after = snapshot(model)
    if after["structure"] != before["structure"]:
        _fail(f"{what} changed the model's structure (its submodules); inspect the model, do not edit it")
    if after["training"] != before["training"]:
        _fail(f"{what} switched the model between train() and eval() mode and did not switch it back")
    if after["requires_grad"] != before["requires_grad"]:
        _fail(f"{what} changed which parameters require gradients")
    for key, value in before["state"].items():
        now = after["state"].get(key)
        if now is None or now.shape != value.shape or not _torch_equal(now, value):
            _fail(f"{what} changed the model's {key!r}; a function that only inspects a model must leave "
                  "its parameters and buffers as they were")


# --------------------------------------------------------------------------- training loops

class GradientProbe:
    """Watches every backward pass into ``model``'s parameters for gradients that were not reset.

    ``loss.backward()`` *adds* to ``p.grad``. Just before it adds, a tensor hook records this
    pass's own gradient; just after, a post-accumulate hook compares ``p.grad`` with it. They
    differ exactly when the previous step's gradient was still there (no ``zero_grad``).
    When the learner's code runs in another process, the grader asks that process to
    watch the models in ``GradientProbe.live`` and adds what it saw to ``stale``.
    """

    live: list = []  # the probes in use now

    def __init__(self, model: nn.Module):
        self.model = model
        GradientProbe.live.append(self)
        self.backward_passes: dict[str, int] = {}
        self.stale: list[tuple[str, int]] = []
        self._fresh: dict[str, torch.Tensor] = {}
        self._handles = []
        for name, p in model.named_parameters():
            if p.requires_grad:
                self._handles.append(p.register_hook(functools.partial(self._record, name)))
                self._handles.append(p.register_post_accumulate_grad_hook(functools.partial(self._compare, name)))

    def _record(self, name, grad):
        self._fresh[name] = _clone(_detach(grad))

    def _compare(self, name, param):
        count = self.backward_passes.get(name, 0) + 1
        self.backward_passes[name] = count
        fresh = self._fresh.pop(name, None)
        if fresh is not None and param.grad is not None and not _torch_equal(_detach(param.grad), fresh):
            self.stale.append((name, count))

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if self in GradientProbe.live:
            GradientProbe.live.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()
        return False

    def expect_fresh_gradients(self, what: str) -> None:
        __tracebackhide__ = True
        if self.stale:
            name, step = self.stale[0]
            _fail(f"{what}: in backward pass {step}, {name!r}.grad still held the previous step's gradient, so "
                  "backward() added the new one to it\n  -- call optimizer.zero_grad() (or model.zero_grad()) "
                  "once in every step, before loss.backward()")


def parameters_changed(model: nn.Module, before: dict) -> list[str]:
    """Names of the parameters whose values differ from the ``snapshot`` ``before``."""
    state = before["state"]
    return [n for n, p in model.named_parameters() if n in state and not _torch_equal(_detach(p), state[n])]


# --------------------------------------------------------------------------- layer tables

def expect_layer_list(actual: Any, expected: list[tuple[str, tuple[int, ...]]], what: str) -> None:
    """Compare a list of ``(class name, output shape)`` pairs, one per layer, and explain the first difference."""
    __tracebackhide__ = True
    if actual is None:
        _fail(f"{what} is None: did you forget to `return` the list?")
    if not _isinstance(actual, list):
        _fail(f"{what} should be a list of (name, shape) pairs, got a {_type(actual).__name__}")
    for i, entry in enumerate(actual):
        if not _isinstance(entry, tuple) or len(entry) != 2:
            _fail(f"{what}: entry {i} should be a pair (class name, shape), got {entry!r}")
        name, shape = entry
        if not _isinstance(name, str):
            _fail(f"{what}: entry {i} should start with the layer's class name as a str "
                  f"(e.g. type(layer).__name__), got {name!r}")
        if not _isinstance(shape, tuple) or not all(_isinstance(s, int) and not _isinstance(s, bool) for s in shape):
            _fail(f"{what}: entry {i} ({name}) should have its shape as a tuple of ints "
                  f"(tuple(output.shape)), got {shape!r}")
    names = [e[0] for e in actual]
    expected_names = [e[0] for e in expected]
    if len(actual) != len(expected):
        _fail(f"{what}: expected {len(expected)} entries, one per child of the Sequential, got {len(actual)}\n"
              f"  expected layers: {expected_names}\n  your layers:     {names}\n"
              "  -- hook each child of the Sequential once (iterate over the model or model.children()); "
              "model.modules() also yields the model itself and the layers inside nested blocks")
    for i, ((name, shape), (exp_name, exp_shape)) in enumerate(zip(actual, expected)):
        if name != exp_name:
            _fail(f"{what}: entry {i} is named {name!r}, expected {exp_name!r}\n"
                  "  -- use the class name of the child, type(layer).__name__")
        if tuple(shape) != tuple(exp_shape):
            message = f"{what}: entry {i} ({name}) has shape {tuple(shape)}, expected {tuple(exp_shape)}"
            if tuple(shape) == tuple(exp_shape[1:]):
                message += "\n  -- the batch axis is missing: keep the whole output.shape, batch axis included"
            elif i > 0 and tuple(shape) == tuple(expected[i - 1][1]):
                message += ("\n  -- that is the layer's *input* shape: a forward hook is called as "
                            "hook(module, inputs, output); record output.shape")
            _fail(message)


# --------------------------------------------------------------------------- loss curves

def expect_loss_list(losses: Any, steps: int, what: str) -> None:
    """A loss curve: a list of exactly ``steps`` finite Python floats."""
    __tracebackhide__ = True
    if losses is None:
        _fail(f"{what} returned None: did you forget to `return` the list of losses?")
    if not _isinstance(losses, list):
        _fail(f"{what} should return a list of floats, got a {_type(losses).__name__}")
    if len(losses) != steps:
        _fail(f"{what} returned {len(losses)} losses, expected {steps}: record exactly one loss per step")
    for i, value in enumerate(losses):
        if _isinstance(value, bool) or not _isinstance(value, float):
            extra = " (a tensor: store loss.item(), which also frees the graph)" if _isinstance(value, torch.Tensor) else ""
            _fail(f"{what}: losses[{i}] is a {_type(value).__name__}{extra}; expected a Python float")
        if value != value or value in (float("inf"), float("-inf")):
            _fail(f"{what}: losses[{i}] is {value}: the training diverged (is the learning rate far too large?)")


def expect_first_loss(losses: list, initial: float, what: str) -> None:
    """``losses[0]`` must be the mean cross-entropy of the model as it was passed in."""
    __tracebackhide__ = True
    if abs(losses[0] - initial) > 1e-5 + 1e-4 * abs(initial):
        message = (f"{what}: losses[0] is {losses[0]:.6f}, but the mean cross-entropy of the untrained model on "
                   f"the batch is {initial:.6f}")
        if len(losses) > 1 and abs(losses[1] - initial) <= 1e-5 + 1e-4 * abs(initial):
            message += " (your losses[1])"
        message += ("\n  -- record the loss of each step's forward pass, before optimizer.step(); use "
                    "F.cross_entropy(logits, y) on the model's raw outputs (mean over the batch, no extra softmax)")
        _fail(message)
