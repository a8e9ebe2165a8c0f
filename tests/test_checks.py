"""The check helpers: their verdicts and the messages a learner reads."""

import numpy as np
import pytest

from cnn_course import checks
from cnn_course.checks import CheckFailed, LearnerError


def message(fn, *args, **kwargs) -> str:
    with pytest.raises(CheckFailed) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_shape_mismatch_names_axis_and_hint():
    text = message(checks.expect_shape, np.zeros((2, 8, 16, 16)), (2, 8, 15, 15), "conv output", axes="NCHW",
                   hint={"H": "check padding in the output-size formula"})
    assert "expected shape (2, 8, 15, 15), got (2, 8, 16, 16)" in text
    assert "axis 2 (H) is 16, expected 15" in text and "axis 3 (W) is 16, expected 15" in text
    assert "check padding in the output-size formula" in text


def test_wrong_number_of_axes():
    text = message(checks.expect_shape, np.zeros((4, 4)), (1, 4, 4), axes="CHW")
    assert "2 axes instead of 3" in text


def test_value_mismatch_reports_first_and_largest_error():
    expected = np.arange(12.0).reshape(3, 4)
    actual = expected.copy()
    actual[0, 2] += 0.5
    actual[2, 1] -= 3.0
    text = message(checks.expect_close, actual, expected)
    assert "2 of 12 values differ" in text
    assert "first difference at index (0, 2)" in text
    assert "largest error 3 at index (2, 1)" in text


def test_close_values_pass_and_tolerances_follow_dtype():
    x = np.linspace(0, 1, 7)
    checks.expect_close(x + 1e-10, x)
    checks.expect_close((x + 1e-6).astype(np.float32), x.astype(np.float32))
    with pytest.raises(CheckFailed):
        checks.expect_close(x + 1e-5, x)  # too far for float64


def test_dtype_is_checked():
    text = message(checks.expect_close, np.zeros(3, np.float32), np.zeros(3, np.float64))
    assert "expected dtype float64, got float32" in text


def test_nan_never_passes():
    with pytest.raises(CheckFailed):
        checks.expect_close(np.array([np.nan, 1.0]), np.array([np.nan, 1.0]))


class AlwaysEqual(np.ndarray):
    def __eq__(self, other):
        return True


class LooksLikeAnArray:
    shape = (2, 2)
    dtype = np.dtype("float64")

    def __eq__(self, other):
        return True


@pytest.mark.parametrize("cheat", [np.zeros((2, 2)).view(AlwaysEqual), LooksLikeAnArray(), [[0.0, 0.0], [0.0, 0.0]]])
def test_only_real_ndarrays_are_accepted(cheat):
    text = message(checks.expect_close, cheat, np.ones((2, 2)))
    assert "should be a numpy.ndarray" in text


def test_replacing_numpy_comparisons_does_not_change_the_verdict(monkeypatch):
    monkeypatch.setattr(np, "isclose", lambda *a, **k: np.ones(np.broadcast(*a[:2]).shape, bool))
    monkeypatch.setattr(np, "allclose", lambda *a, **k: True)
    monkeypatch.setattr(np, "array_equal", lambda *a, **k: True)
    with pytest.raises(CheckFailed):
        checks.expect_close(np.zeros(3), np.ones(3))


def test_none_result_hints_at_missing_return():
    assert "forget to `return`" in message(checks.expect_array, None)


def test_learner_exception_is_shown_as_theirs():
    def correlate2d(image, kernel):
        return image[100]

    with pytest.raises(LearnerError) as info:
        checks.call_learner(correlate2d, np.zeros((3, 3)), np.zeros((2, 2)))
    text = str(info.value)
    assert "your correlate2d raised IndexError" in text
    assert "correlate2d(array(3, 3) float64, array(2, 2) float64)" in text
    assert "return image[100]" in text


def test_not_implemented_is_explained():
    def pad2d(x, padding):
        raise NotImplementedError()

    assert "not implemented yet" in message(checks.call_learner, pad2d, np.zeros(2), 1)


def test_in_place_modification_is_caught_and_caller_data_survives():
    def scale(x):
        x *= 2
        return x

    original = np.ones(3)
    assert "modified its input (argument 1) in place" in message(checks.call_learner, scale, original)
    assert np.array_equal(original, np.ones(3))


def test_torch_is_refused_in_numpy_exercises():
    import torch

    def relu(x):
        return torch.relu(torch.from_numpy(x)).numpy()

    assert "NumPy alone" in message(checks.call_learner, relu, np.ones(3), numpy_only=True)
    checks.call_learner(relu, np.ones(3))  # allowed where torch is the point


def test_numpy_only_accepts_plain_numpy():
    out = checks.call_learner(lambda x: np.maximum(x, 0), np.array([-1.0, 2.0]), numpy_only=True)
    assert out.tolist() == [0.0, 2.0]


def test_expect_raises_requires_named_values():
    def conv(x, w):
        raise ValueError("shapes do not match")

    text = message(checks.expect_raises, ValueError, conv, np.zeros((1, 3)), np.zeros((1, 4)), mentions=[3, 4])
    assert "should name the offending value(s) 3, 4" in text

    def silent(x, w):
        return x

    assert "expected it to raise ValueError" in message(checks.expect_raises, ValueError, silent, 1, 2)


def test_expect_equal_is_strict_about_types():
    checks.expect_equal(np.int64(5), 5)
    assert "a float, expected a int" in message(checks.expect_equal, 5.0, 5)
    assert "expected 5, got True" in message(checks.expect_equal, True, 5)
    checks.expect_equal([(3, 1), (6, 1)], [(3, 1), (6, 1)])
    with pytest.raises(CheckFailed):
        checks.expect_equal([(3, 1), (6, 2)], [(3, 1), (6, 1)])


def test_compare_with_reference_reports_the_failing_case():
    cases = [((np.ones((2, 2)),), {}), ((np.ones((3, 5)),), {})]
    text = message(checks.compare_with_reference, lambda x: x[:2], lambda x: x, cases, name="identity")
    assert "identity(array(3, 5) float64)" in text


def test_string_hint_is_shown_for_a_shape_mismatch():
    text = message(checks.expect_close, np.zeros((3, 3)), np.zeros((4, 4)), hint="output is (H - kh + 1) wide")
    assert "expected shape (4, 4), got (3, 3)" in text and "output is (H - kh + 1) wide" in text


@pytest.mark.parametrize("start", ["threading", "_thread"])
def test_numpy_only_holds_in_threads_the_call_starts(start):
    """Handing the work to torch on another thread is caught as well (the arm's-length runner has no torch at all)."""
    import threading
    import time

    torch = pytest.importorskip("torch")

    def via_thread(x):
        out = {}
        work = lambda: out.setdefault("y", torch.as_tensor(x).mul(2).numpy())  # noqa: E731
        if start == "threading":
            t = threading.Thread(target=work)
            t.start()
            t.join()
        else:
            import _thread

            _thread.start_new_thread(work, ())
            time.sleep(0.3)
        return out["y"]

    with pytest.raises(checks.CheckFailed, match="called torch"):
        checks.call_learner(via_thread, np.ones(3), numpy_only=True, name="via_thread")
    assert threading._start_new_thread.__name__ == "start_new_thread"  # put back afterwards
