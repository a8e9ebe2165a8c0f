"""The message format between the grader and the sandboxed process (autograder/wire.py), as an adversary sees it.

Replies come from student code: a reply that stalls must not hold the grading worker past its deadline, and a
reply that is small on the wire must not become large when it is read.
"""

import contextlib
import io
import os
import struct
import threading
import time
import tracemalloc
import zipfile

import numpy as np
import pytest
import torch  # imported here, so that no test measures the import's memory

from autograder import wire

MiB = 1 << 20


def recv_in_thread(fd: int, **kwargs):
    """``wire.recv(fd, **kwargs)`` in a thread: what it returned or raised, and how long it took (None: still
    blocked after 5 s, which is what a wire without deadlines does)."""
    out: dict = {}

    def go():
        start = time.monotonic()
        try:
            out["value"] = wire.recv(fd, **kwargs)
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            out["error"] = exc
        out["seconds"] = time.monotonic() - start

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(5)
    return None if thread.is_alive() else out


def npy_header(shape, descr="<f8", fortran=False) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": fortran, "shape": shape})
    return buf.getvalue()


def as_npy(text: str) -> bytes:
    return npy_header((len(text.encode()),), "|u1") + text.encode()


def zipped(members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def message_with(payload: dict[str, bytes], header='{"a": 0, "scalar": false}') -> bytes:
    """A message built by hand: a JSON header (by default: array 0), and the members in ``payload``."""
    return zipped({"header.npy": as_npy(header), **payload})


def peak_growth(fn) -> int:
    """How far the process's peak resident memory rose while ``fn()`` ran, in bytes."""
    def hwm():
        with open("/proc/self/status") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM"))

    with open("/proc/self/clear_refs", "w") as f:  # forget the peak so far: it restarts from what is resident now
        f.write("5")
    before = hwm()
    fn()
    return hwm() - before


# --------------------------------------------------------------------------- no read blocks past the deadline

@pytest.mark.parametrize("written", [b"", struct.pack("<Q", 1000)[:4], struct.pack("<Q", 1000) + b"x" * 500],
                         ids=["before the length", "inside the length", "inside the body"])
def test_a_sender_that_stalls_is_late_not_forever(written):
    r, w = os.pipe()
    os.write(w, written)  # and then nothing more, with the pipe left open
    try:
        out = recv_in_thread(r, deadline=time.monotonic() + 1)
        assert out is not None, "recv blocked past its deadline"
        assert isinstance(out.get("error"), TimeoutError), out
        assert 0.9 <= out["seconds"] < 1.5
    finally:
        os.close(w)  # a recv still blocked (a wire without deadlines) sees the end and returns
        time.sleep(0.1)
        os.close(r)


def test_a_message_that_arrives_in_pieces_before_the_deadline_is_read():
    value = {"x": np.arange(300_000.0), "s": "done"}  # larger than a pipe's buffer
    data = wire.frame(value)
    r, w = os.pipe()

    def dribble():
        with contextlib.suppress(BrokenPipeError):  # the reader gave up
            for i in range(0, len(data), 100_000):
                os.write(w, data[i:i + 100_000])
                time.sleep(0.01)

    writer = threading.Thread(target=dribble)
    writer.start()
    try:
        out = recv_in_thread(r, deadline=time.monotonic() + 4)
        assert out is not None and "error" not in out, out
        assert out["value"]["s"] == "done" and np.array_equal(out["value"]["x"], value["x"])
    finally:
        os.close(r)
        writer.join()
        os.close(w)


def test_recv_without_a_deadline_still_reads_and_sees_the_end():
    r, w = os.pipe()
    wire.send(w, [1, "two", np.float32(3)])
    assert wire.recv(r) == [1, "two", np.float32(3)]
    os.close(w)
    with pytest.raises(EOFError):
        wire.recv(r)
    os.close(r)


# --------------------------------------------------------------------------- nothing grows when it is read

def test_a_declared_length_above_the_limit_is_refused_before_anything_is_allocated():
    assert wire.MAX_MESSAGE <= 128 * MiB  # one message plus what it decodes to stays well under 1 GiB
    r, w = os.pipe()
    os.write(w, struct.pack("<Q", 256 * MiB + 1))
    os.close(w)  # nothing follows: a wire that believed the length would see the end, not block
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="too large"):
            wire.recv(r, deadline=time.monotonic() + 1, limit=256 * MiB)
        assert tracemalloc.get_traced_memory()[1] < MiB
    finally:
        tracemalloc.stop()
        os.close(r)
    r, w = os.pipe()
    os.write(w, struct.pack("<Q", wire.MAX_MESSAGE + 1))
    os.close(w)
    with pytest.raises(ValueError, match="too large"):
        wire.recv(r)
    os.close(r)


def test_a_deflated_member_that_inflates_to_a_gibibyte_is_refused_without_inflating_it():
    size = 1 << 30
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        zf.writestr("header.npy", as_npy('{"a": 0, "scalar": false}'))
        with zf.open("a0.npy", "w", force_zip64=True) as f:
            f.write(npy_header((size,), "|u1"))
            zeros = bytes(16 * MiB)
            for _ in range(size // len(zeros)):
                f.write(zeros)
    del zeros
    bomb = buf.getvalue()
    assert len(bomb) < 8 * MiB and zipfile.ZipFile(io.BytesIO(bomb)).getinfo("a0.npy").file_size > size

    outcome = []

    def read():
        try:
            outcome.append(wire.loads(bomb))
        except ValueError as exc:
            outcome.append(exc)

    assert peak_growth(read) < 100 * MiB
    assert isinstance(outcome[0], ValueError) and str(outcome[0]).startswith("malformed message")


@pytest.mark.parametrize("shape", [(2**31,), (2**24,)], ids=["16 GiB", "128 MiB"])
def test_a_header_that_declares_more_than_follows_is_refused_without_allocating(shape):
    data = message_with({"a0.npy": npy_header(shape) + bytes(80)})
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="malformed message"):
            wire.loads(data)
        assert tracemalloc.get_traced_memory()[1] < 4 * MiB
    finally:
        tracemalloc.stop()


def test_deep_nesting_is_malformed_not_a_crash():
    deep: list = []
    for _ in range(300):
        deep = [deep]
    with pytest.raises(ValueError, match="malformed message"):
        wire.loads(wire.dumps(deep))
    very_deep = '{"l": [' * 5000 + "null" + "]}" * 5000  # deeper than Python's recursion limit: json gives up
    with pytest.raises(ValueError, match="malformed message"):
        wire.loads(message_with({}, header=very_deep))
    shallow: list = []
    for _ in range(50):
        shallow = [shallow]
    assert wire.loads(wire.dumps(shallow)) == shallow


ARRAY = npy_header((4,)) + np.arange(4.0).tobytes()
MALFORMED = {
    "not a zip": b"\x00" * 100,
    "truncated": wire.dumps({"x": np.arange(4.0)})[:200],
    "deflated": zipped({"header.npy": as_npy('{"a": 0}'), "a0.npy": ARRAY}, zipfile.ZIP_DEFLATED),
    "object dtype": message_with({"a0.npy": npy_header((1,), "|O") + bytes(8)}),
    "stray member": message_with({"a0.npy": ARRAY, "../a1.npy": ARRAY}),
    "no header": zipped({"a0.npy": ARRAY}),
    "header not text": zipped({"header.npy": npy_header((2,), "<f8") + bytes(16)}),
    "missing array": message_with({"a1.npy": ARRAY}),
    "array used twice": message_with({"a0.npy": ARRAY}, header='{"l": [{"a": 0}, {"T": 0}]}'),
    "header too large": message_with({}, header='"' + "x" * (4 * MiB) + '"'),  # over wire.MAX_HEADER
    "npy version 3": message_with({"a0.npy": b"\x93NUMPY\x03\x00" + struct.pack("<I", 118)
                                   + npy_header((4,))[10:] + bytes(32)}),
    "trailing data in a member": message_with({"a0.npy": ARRAY + bytes(8)}),
    "a node of three keys": message_with({}, header='{"i": "1", "f": "2", "x": 3}'),
    "npy header length lies": message_with({"a0.npy": b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**31) + bytes(64)}),
}


def _directory_size_lies() -> bytes:
    data = bytearray(message_with({"a0.npy": ARRAY}))
    end = data.rindex(b"PK\x05\x06")  # the end of central directory record: its size field, 12 bytes in
    data[end + 12:end + 16] = struct.pack("<I", 0xFFFF_FFF0)
    return bytes(data)


MALFORMED["directory size lies"] = _directory_size_lies()


@pytest.mark.parametrize("case", [*MALFORMED, "duplicate member"])
def test_malformed_messages_are_refused(case):
    data = MALFORMED.get(case)
    if case == "duplicate member":
        buf = io.BytesIO(message_with({"a0.npy": ARRAY}))
        with zipfile.ZipFile(buf, "a") as zf, pytest.warns(UserWarning, match="Duplicate"):
            zf.writestr("a0.npy", npy_header((1,)) + bytes(8))
        data = buf.getvalue()
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"^malformed message \("):
            wire.loads(data)
        assert tracemalloc.get_traced_memory()[1] < 2 * len(data) + 4 * MiB  # nothing grew from what it claimed
    finally:
        tracemalloc.stop()


# --------------------------------------------------------------------------- honest messages still cross

def test_round_trips_keep_values_dtypes_and_writability():
    value = {
        "a": (np.arange(6.0).reshape(2, 3), 3, 2.5, None, "s", [True, np.float32(1.5)]),
        "fortran": np.asfortranarray(np.arange(12, dtype=np.int32).reshape(3, 4)),
        "empty": np.zeros((0, 3), np.float16), "scalar0d": np.array(7, np.uint8), "big endian": np.arange(3, dtype=">i4"),
        "strings": np.array(["ab", "c"]), "complex": np.array([1 + 2j]), "bools": np.array([True, False]),
        "record": np.zeros(2, dtype=[("x", "<f4"), ("y", "<i2")]),
        "t": torch.arange(6, dtype=torch.int16).reshape(2, 3), "tT": torch.arange(6.0).reshape(2, 3).T,
        "nested": {(1, 2): [{"k": -(2**70)}], 5: float("inf")}, "handle": wire.Handle(3),
    }
    back = wire.loads(wire.dumps(value))
    assert back["a"][0].tolist() == value["a"][0].tolist() and back["a"][1:5] == (3, 2.5, None, "s")
    assert type(back["a"][5][1]) is np.float32 and back["a"][5][0] is True
    for key in ("fortran", "empty", "scalar0d", "big endian", "strings", "complex", "bools", "record"):
        assert back[key].dtype == value[key].dtype and back[key].shape == value[key].shape, key
        assert np.array_equal(back[key], value[key]), key
        assert back[key].flags.writeable, key
        np.copyto(back[key], value[key])
    assert back["fortran"].flags.f_contiguous
    assert type(back["t"]) is torch.Tensor and back["t"].dtype == torch.int16 and back["t"].tolist() == [[0, 1, 2], [3, 4, 5]]
    assert torch.equal(back["tT"], value["tT"])
    back["t"].add_(1)  # a tensor received is the grader's own
    assert back["nested"] == value["nested"] and type(back["handle"]) is wire.Handle and back["handle"] == 3


def test_a_message_as_large_as_the_limit_crosses():
    value = np.ones((wire.MAX_MESSAGE - 4096) // 8)
    data = wire.dumps(value)
    assert len(data) <= wire.MAX_MESSAGE
    back = wire.loads(data)
    assert back.shape == value.shape and back[-1] == 1.0
