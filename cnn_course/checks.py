"""Checks whose failure messages teach.

Every test cell in the course goes through these helpers, so a learner always sees
*what* is wrong and a likely *why*, never a bare AssertionError:

    expected shape (2, 8, 15, 15), got (2, 8, 16, 16): axis 2 (H) is 16, expected 15
    -- check the padding in the output-size formula

The comparison primitives are bound at import time (the setup cell imports this
module before any learner code runs), so rebinding ``numpy.allclose`` and friends
in a notebook does not change how answers are judged. Results must be real
``numpy.ndarray`` objects (not subclasses, not look-alikes with a forgiving
``__eq__``).
"""

from __future__ import annotations

import _thread
import copy
import itertools
import sys
import threading
import traceback
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

# Pristine references, taken before any learner code can run.
_ndarray = np.ndarray
_asarray = np.asarray
_isclose = np.isclose
_isnan = np.isnan
_abs = np.abs
_argmax = np.argmax
_unravel = np.unravel_index
_array_equal = np.array_equal
_float64 = np.float64
_type = type
_isinstance = isinstance

# Packages a NumPy exercise must not use (the contract: lessons 01 to 05).
FORBIDDEN_IN_NUMPY_EXERCISES = ("torch", "scipy")


class CheckFailed(AssertionError):
    """A test found a wrong answer; the message says what and, where it can, why."""


class LearnerError(CheckFailed):
    """The learner's own function raised; the message points at their line."""


def _fail(message: str) -> None:
    __tracebackhide__ = True
    raise CheckFailed(message)


# --------------------------------------------------------------------------- calling

def describe(value: Any) -> str:
    """A short description of an argument for messages: arrays by shape and dtype."""
    if _isinstance(value, _ndarray):
        return f"array{tuple(value.shape)} {value.dtype}"
    if _type(value).__module__.startswith("torch") and hasattr(value, "shape"):
        return f"tensor{tuple(value.shape)} {value.dtype}"
    if _isinstance(value, (list, tuple)) and len(value) > 6:
        return f"{_type(value).__name__} of {len(value)}"
    return repr(value)


def describe_call(name: str, args: Sequence[Any] = (), kwargs: dict | None = None) -> str:
    parts = [describe(a) for a in args] + [f"{k}={describe(v)}" for k, v in (kwargs or {}).items()]
    return f"{name}({', '.join(parts)})"


def _learner_frame(exc: BaseException, fn: Callable) -> str:
    """'line N: <source>' of the deepest frame of the learner's own code in a traceback."""
    code = getattr(fn, "__code__", None)
    filename = code.co_filename if code is not None else None
    where = ""
    for frame in traceback.extract_tb(exc.__traceback__):
        if frame.filename == filename:
            where = f"line {frame.lineno} of your cell: {frame.line}"
    return where


class _NoForbiddenCalls:
    """Profiles a call and records the first function it reaches in a forbidden package."""

    def __init__(self, packages: Sequence[str]):
        self.packages = tuple(packages)
        self.found: str | None = None

    def _module_of(self, frame, event, arg) -> str:
        if event == "call":
            return frame.f_globals.get("__name__", "") or ""
        if event == "c_call":
            owner = getattr(arg, "__self__", None)
            module = getattr(arg, "__module__", None) or ""
            if owner is not None and not module:
                module = _type(owner).__module__ or ""
            if _isinstance(owner, type(sys)):
                module = owner.__name__
            return module
        return ""

    def __call__(self, frame, event, arg):
        if self.found is None and event in ("call", "c_call"):
            module = self._module_of(frame, event, arg)
            if module.split(".")[0] in self.packages:
                name = getattr(arg, "__name__", None) if event == "c_call" else frame.f_code.co_name
                self.found = f"{module}.{name}"

    def __enter__(self):
        # Every thread the call starts is profiled too (through threading or _thread): a NumPy
        # exercise may not hand its work to torch on another thread either.
        self._previous = sys.getprofile()
        self._starts = [(module, module.__dict__[name]) for module, name in
                        ((_thread, "start_new_thread"), (threading, "_start_new_thread"))]
        guard, start = self, self._starts[0][1]

        def start_profiled(function, args, kwargs=None, _start=start, _setprofile=sys.setprofile):
            def profiled(*a, **k):
                _setprofile(guard)
                return function(*a, **k)
            return _start(profiled, args, kwargs or {})

        for module, _ in self._starts:
            module.__dict__[_start_names[module.__name__]] = start_profiled
        sys.setprofile(self)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._previous)
        for module, original in self._starts:
            module.__dict__[_start_names[module.__name__]] = original
        return False


_start_names = {"_thread": "start_new_thread", "threading": "_start_new_thread"}


def call_learner(fn: Callable, *args: Any, numpy_only: bool = False, name: str | None = None, **kwargs: Any) -> Any:
    """Call the learner's ``fn``; report its exceptions, in-place edits and forbidden imports as theirs.

    The arguments are deep-copied first, so a function that modifies its input is
    caught, and the caller's arrays stay intact. With ``numpy_only=True`` a call
    that reaches torch or scipy fails (NumPy exercises must be written in NumPy).
    """
    __tracebackhide__ = True
    name = name or getattr(fn, "__name__", "your function")
    if not callable(fn):
        _fail(f"{name} is not a function (it is {describe(fn)}); did a cell above fail to run?")
    call_args = copy.deepcopy(args)
    call_kwargs = copy.deepcopy(kwargs)
    guard = _NoForbiddenCalls(FORBIDDEN_IN_NUMPY_EXERCISES) if numpy_only else None
    try:
        if guard is not None:
            with guard:
                result = fn(*call_args, **call_kwargs)
        else:
            result = fn(*call_args, **call_kwargs)
    except NotImplementedError:
        raise LearnerError(f"{name} is not implemented yet: replace `raise NotImplementedError()` "
                           "with your code") from None
    except Exception as exc:  # the learner's bug: show it as theirs
        where = _learner_frame(exc, fn)
        message = f"your {name} raised {_type(exc).__name__}: {exc}\n  while computing {describe_call(name, args, kwargs)}"
        if where:
            message += f"\n  at {where}"
        raise LearnerError(message) from exc
    if guard is not None and guard.found:
        _fail(f"{name} called {guard.found}: this exercise must be written with NumPy alone "
              "(no torch, no scipy); PyTorch is only the reference the tests compare against")
    for i, (before, after) in enumerate(itertools.chain(zip(args, call_args), zip(kwargs.values(), call_kwargs.values()))):
        if _isinstance(before, _ndarray) and not _array_equal(before, after, equal_nan=True):
            label = f"argument {i + 1}" if i < len(args) else f"argument {list(kwargs)[i - len(args)]!r}"
            _fail(f"{name} modified its input ({label}) in place; work on a copy (e.g. x.copy()) instead")
    return result


# --------------------------------------------------------------------------- comparing

def expect_array(actual: Any, what: str = "the result") -> np.ndarray:
    """Insist on a real numpy.ndarray (not a list, a tensor, a subclass or a look-alike)."""
    __tracebackhide__ = True
    if _type(actual) is not _ndarray:
        if actual is None:
            _fail(f"{what} is None: did you forget to `return` it?")
        hint = ""
        if _type(actual).__module__.startswith("torch"):
            hint = " (a torch tensor: this exercise works in NumPy)"
        elif _isinstance(actual, (list, tuple)):
            hint = " (wrap it with np.array(...))"
        _fail(f"{what} should be a numpy.ndarray, got {_type(actual).__module__}.{_type(actual).__qualname__}{hint}")
    return actual


def expect_shape(actual: Any, expected_shape: Sequence[int], what: str = "the result",
                 axes: str | Sequence[str] | None = None, hint: str | dict | None = None) -> None:
    """Compare shapes; name the first wrong axis and say what usually causes it.

    ``axes`` names the axes (``"NCHW"`` or a list of names). ``hint`` is a sentence
    or a dict from axis name to a sentence, shown after the mismatch.
    """
    __tracebackhide__ = True
    actual_shape = tuple(int(s) for s in actual.shape)
    expected_shape = tuple(int(s) for s in expected_shape)
    if actual_shape == expected_shape:
        return
    names = list(axes) if axes is not None else [str(i) for i in range(len(expected_shape))]
    if len(actual_shape) != len(expected_shape):
        detail = f"{len(actual_shape)} axes instead of {len(expected_shape)}"
        if axes is not None:
            detail += f" ({', '.join(names)})"
        message = f"{what}: expected shape {expected_shape}, got {actual_shape}: {detail}"
        if _isinstance(hint, str):
            message += f"\n  -- {hint}"
        _fail(message)
    bad = [i for i, (a, e) in enumerate(zip(actual_shape, expected_shape)) if a != e]
    parts = []
    for i in bad:
        label = f"axis {i} ({names[i]})" if axes is not None else f"axis {i}"
        parts.append(f"{label} is {actual_shape[i]}, expected {expected_shape[i]}")
    message = f"{what}: expected shape {expected_shape}, got {actual_shape}: " + "; ".join(parts)
    if _isinstance(hint, dict):
        tips = [hint[names[i]] for i in bad if names[i] in hint]
        if tips:
            message += "\n  -- " + "\n  -- ".join(dict.fromkeys(tips))
    elif hint:
        message += f"\n  -- {hint}"
    _fail(message)


def expect_close(actual: Any, expected: Any, what: str = "the result", *, rtol: float | None = None,
                 atol: float | None = None, axes: str | Sequence[str] | None = None,
                 hint: str | dict | None = None, check_dtype: bool = True) -> None:
    """Compare an array with the expected one: type, shape, dtype, then values.

    Tolerances default by dtype: ``rtol=1e-6, atol=1e-8`` for float64 (the contract),
    ``rtol=1e-4, atol=1e-5`` for float32. A value mismatch reports how many entries
    differ, the largest error and where, and the first differing index.
    """
    __tracebackhide__ = True
    actual = expect_array(actual, what)
    expected = _asarray(expected)
    expect_shape(actual, expected.shape, what, axes=axes, hint=hint)
    if check_dtype and actual.dtype != expected.dtype:
        _fail(f"{what}: expected dtype {expected.dtype}, got {actual.dtype}; keep the input's dtype "
              "(float64 in gives float64 out): create new arrays with dtype=x.dtype or np.zeros_like")
    if expected.dtype == np.float32 or actual.dtype == np.float32:
        rtol = 1e-4 if rtol is None else rtol
        atol = 1e-5 if atol is None else atol
    else:
        rtol = 1e-6 if rtol is None else rtol
        atol = 1e-8 if atol is None else atol
    a = actual.astype(_float64, copy=False) if actual.dtype.kind in "biuf" else actual
    e = expected.astype(_float64, copy=False) if expected.dtype.kind in "biuf" else expected
    if a.dtype.kind not in "f" or e.dtype.kind not in "f":
        ok = a == e
    else:
        ok = _isclose(a, e, rtol=rtol, atol=atol, equal_nan=False)
        ok = _asarray(ok) & ~_isnan(a)
    if bool(_asarray(ok).all()):
        return
    ok = _asarray(ok)
    n_bad = int((~ok).sum())
    first = tuple(int(i) for i in _unravel(int(_argmax(~ok.ravel())), ok.shape)) if ok.ndim else ()
    err = _abs(a - e) if a.dtype.kind == "f" or e.dtype.kind == "f" else _abs(a.astype(_float64) - e.astype(_float64))
    err = _asarray(err, dtype=_float64)
    err_filled = np.where(_isnan(err), np.inf, err)
    worst = tuple(int(i) for i in _unravel(int(_argmax(err_filled.ravel())), err.shape)) if err.ndim else ()
    message = (f"{what}: {n_bad} of {ok.size} values differ from the expected result\n"
               f"  first difference at index {first}: got {a[first]!r}, expected {e[first]!r}\n"
               f"  largest error {float(err_filled[worst]):.3g} at index {worst}: got {a[worst]!r}, expected {e[worst]!r}")
    if _isinstance(hint, str):
        message += f"\n  -- {hint}"
    _fail(message)


def expect_equal(actual: Any, expected: Any, what: str = "the result", hint: str | None = None) -> None:
    """Exact equality for ints, tuples, lists and strings, with strict types for numbers."""
    __tracebackhide__ = True
    if _isinstance(expected, bool) or not _isinstance(expected, int):
        same = _type(actual) is _type(expected) and actual == expected
    else:  # an int answer may come as a numpy integer, never as a float or bool
        same = (_isinstance(actual, (int, np.integer)) and not _isinstance(actual, (bool, np.bool_))
                and int(actual) == expected)
    if _isinstance(expected, (tuple, list)) and _type(actual) is _type(expected) and len(actual) == len(expected):
        same = all(_type(x) is _type(y) or (_isinstance(y, int) and _isinstance(x, (int, np.integer)))
                   for x, y in zip(actual, expected)) and list(actual) == list(expected)
    if not same:
        message = f"{what}: expected {expected!r}, got {actual!r}"
        if _type(actual) is not _type(expected) and not (_isinstance(expected, int) and _isinstance(actual, np.integer)):
            message += f" (a {_type(actual).__name__}, expected a {_type(expected).__name__})"
        if hint:
            message += f"\n  -- {hint}"
        _fail(message)


def expect_answer(value: Any, form: str, what: str = "your answer", *, expected: Any = None,
                  rtol: float = 1e-2) -> None:
    """A "predict, then check" answer: its form (``form``), then, with ``expected``, its value.

    Forms: ``"int"``, ``"float"`` (any real number; compared with relative tolerance
    ``rtol``, default 1%: a prediction, not a computation), ``"bool"``, ``"tuple of N ints"``
    (a tuple or list, e.g. a shape), ``"letter a-d"`` (one letter in that range, either case).
    The visible test checks the form only; the hidden test passes ``expected``.
    """
    __tracebackhide__ = True
    if value is None or value is Ellipsis:
        _fail(f"{what} is still {'...' if value is Ellipsis else 'None'}: write your prediction as a value ({form})")
    words = form.split()
    kind = words[-1]
    integral = (int, np.integer)
    if form == "int":
        if _isinstance(value, (bool, np.bool_)) or not _isinstance(value, integral):
            _fail(f"{what} should be an int, got {describe(value)} (a {_type(value).__name__})")
        value = int(value)
    elif form == "float":
        if _isinstance(value, (bool, np.bool_)) or not _isinstance(value, (int, float, np.integer, np.floating)):
            _fail(f"{what} should be a number, got {describe(value)} (a {_type(value).__name__})")
        value = float(value)
    elif form == "bool":
        if not _isinstance(value, (bool, np.bool_)):
            _fail(f"{what} should be True or False, got {describe(value)}")
        value = bool(value)
    elif words[:2] == ["tuple", "of"] and kind == "ints":
        n = int(words[2])
        if not _isinstance(value, (tuple, list)) or len(value) != n or not all(
                _isinstance(v, integral) and not _isinstance(v, (bool, np.bool_)) for v in value):
            _fail(f"{what} should be a tuple of {n} ints, e.g. {tuple(range(1, n + 1))}, got {describe(value)}")
        value = tuple(int(v) for v in value)
    elif words[0] == "letter":
        first, last = kind.split("-")
        if not _isinstance(value, str) or len(value.strip()) != 1 or not first <= value.strip().lower() <= last:
            _fail(f"{what} should be one letter from {first} to {last}, as a string (e.g. {first!r}), got {value!r}")
        value = value.strip().lower()
    else:
        raise ValueError(f"unknown answer form {form!r}")
    if expected is None:
        return
    if form == "float":
        if not abs(value - float(expected)) <= rtol * abs(float(expected)) + 1e-12:
            _fail(f"{what}: {value!r} is not the value the lesson computes")
    else:
        if form.startswith("letter"):
            expected = str(expected).lower()
        elif form.startswith("tuple"):
            expected = tuple(int(v) for v in expected)
        if value != expected:
            _fail(f"{what}: {value!r} is not the value the lesson computes")


def expect_raises(exc_type: type[BaseException], fn: Callable, *args: Any, mentions: Iterable[Any] = (),
                  why: str = "", **kwargs: Any) -> None:
    """The learner's ``fn`` must raise ``exc_type`` for these arguments, naming the offending values."""
    __tracebackhide__ = True
    name = getattr(fn, "__name__", "your function")
    call = describe_call(name, args, kwargs)
    try:
        result = fn(*copy.deepcopy(args), **copy.deepcopy(kwargs))
    except NotImplementedError:
        raise LearnerError(f"{name} is not implemented yet") from None
    except exc_type as exc:
        text = str(exc)
        missing = [str(m) for m in mentions if str(m) not in text]
        if missing:
            _fail(f"{call} raised {exc_type.__name__}({text!r}), but the message should name the offending "
                  f"value(s) {', '.join(missing)} so the user can fix the call")
        return
    except Exception as exc:
        _fail(f"{call} raised {_type(exc).__name__}: {exc}; expected a {exc_type.__name__}"
              + (f" because {why}" if why else ""))
    _fail(f"{call} returned {describe(result)}; expected it to raise {exc_type.__name__}"
          + (f" because {why}" if why else ""))


def compare_with_reference(fn: Callable, reference: Callable, cases: Iterable[tuple[tuple, dict]], *,
                           name: str | None = None, numpy_only: bool = False, axes: str | None = None,
                           hint: str | dict | None = None, rtol: float | None = None,
                           atol: float | None = None) -> None:
    """Run ``fn`` and ``reference`` on every ``(args, kwargs)`` case and compare the results.

    The first failing case is reported with its arguments. Tuples of arrays are
    compared element by element. Returns None: nbgrader would read a number left
    as a test cell's value as partial credit.
    """
    __tracebackhide__ = True
    name = name or getattr(fn, "__name__", "your function")
    count = 0
    for args, kwargs in cases:
        expected = reference(*args, **kwargs)
        actual = call_learner(fn, *args, numpy_only=numpy_only, name=name, **kwargs)
        call = describe_call(name, args, kwargs)
        if _isinstance(expected, tuple):
            if not _isinstance(actual, tuple) or len(actual) != len(expected):
                _fail(f"{call} should return a tuple of {len(expected)} arrays, got {describe(actual)}")
            for i, (a, e) in enumerate(zip(actual, expected)):
                expect_close(a, e, f"{call}[{i}]", axes=axes, hint=hint, rtol=rtol, atol=atol)
        else:
            expect_close(actual, expected, call, axes=axes, hint=hint, rtol=rtol, atol=atol)
        count += 1
    if count == 0:
        _fail("no test cases were run (this is a bug in the test, please report it)")
