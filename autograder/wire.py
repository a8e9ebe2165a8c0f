"""Data-only messages between the grader and the process that runs student code.

A message is a length-prefixed ``.npz`` archive (``allow_pickle=False`` both ways):
a JSON header describing the structure, with every array stored as its own
``.npy`` member. Nothing in a message can execute code when it is read, so the
grader never runs anything the student wrote. Values that can cross: None, bool,
int, float, str, NumPy arrays and scalars (not object arrays), PyTorch tensors (sent
as their values, as arrays with their dtype, and received as new CPU tensors),
:class:`Handle` numbers, and tuples, lists and dicts of them.

Replies are written by student code, so reading one is bounded: :func:`recv` waits no longer than its deadline
and allocates no more than the length it accepted, and :func:`loads` allocates nothing a member declares until
the bytes behind it are there (no compression, no shape larger than its data).
"""

from __future__ import annotations

import io
import json
import math
import os
import re
import select
import struct
import sys
import time
import zipfile

import numpy as np

# A grading worker (about 360 MiB with torch) holds one message and the arrays it decodes to, each at most this
# large, and stays under 1 GiB. Honest traffic is far smaller: the largest message in the arm's-length tests
# (tests/test_arms_length.py, all torch lessons) is 5.8 MiB, a reply in lesson 08.
MAX_MESSAGE = 128 * 1024 * 1024
# The JSON header: parsed, a byte of it can cost up to ~25 bytes of Python objects ("{}," is one dict), so 4 MiB
# can cost ~100 MiB. The largest honest one in those tests is 9 KiB.
MAX_HEADER = 4 * 1024 * 1024
MAX_DEPTH = 100  # nesting of lists, tuples and dicts: a message is data, not a recursion bomb
_MEMBER = re.compile(r"header\.npy|a(0|[1-9][0-9]{0,8})\.npy")


class NotData(TypeError):
    """A value that cannot cross (a function, a module, an object array...)."""


class Late(TimeoutError):
    """The other side did not finish its message (or did not begin one) by the deadline."""


class Handle(int):
    """The number by which the process that runs student code knows one of its objects (a model it built)."""


def _encode(value, arrays: list):
    if value is None or isinstance(value, (bool, str)):
        return value
    if type(value) is int:
        return {"i": str(value)}
    if type(value) is Handle:
        return {"H": str(int(value))}
    if type(value) is float:
        return {"f": repr(value)}
    if type(value) is np.ndarray or isinstance(value, np.generic):
        arr = np.asarray(value)
        if arr.dtype.hasobject:
            raise NotData("an array of Python objects")
        arrays.append(arr)
        return {"a": len(arrays) - 1, "scalar": isinstance(value, np.generic)}
    tensor = getattr(sys.modules.get("torch"), "Tensor", None)  # only where torch is already imported
    if isinstance(tensor, type) and isinstance(value, tensor):
        arr = value.detach().cpu().resolve_conj().resolve_neg().numpy()
        if type(arr) is not np.ndarray or arr.dtype.hasobject:
            raise NotData("a tensor that is not one")
        arrays.append(arr)
        return {"T": len(arrays) - 1}
    if type(value) is list:
        return {"l": [_encode(v, arrays) for v in value]}
    if isinstance(value, tuple):  # torch.Size and named tuples cross as the plain tuple of their items
        return {"t": [_encode(v, arrays) for v in tuple.__iter__(value)]}
    if type(value) is dict:
        return {"d": [[_encode(k, arrays), _encode(v, arrays)] for k, v in value.items()]}
    raise NotData(f"a {type(value).__module__}.{type(value).__qualname__}")


def _decode(node, arrays: dict, depth: int = 0):
    if node is None or isinstance(node, (bool, str)):
        return node
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise ValueError("not a node")
    if depth > MAX_DEPTH:
        raise ValueError("nested too deeply")
    if "i" in node:
        return int(node["i"])
    if "H" in node:
        return Handle(int(node["H"]))
    if "f" in node:
        return float(node["f"])
    # Each array is used once (pop): the arrays are fresh, so they are handed over without a copy, never shared.
    if "a" in node:
        arr = arrays.pop(f"a{int(node['a'])}")
        return arr[()] if node.get("scalar") else arr
    if "T" in node:
        import torch

        return torch.from_numpy(arrays.pop(f"a{int(node['T'])}"))
    if "t" in node:
        return tuple(_decode(v, arrays, depth + 1) for v in node["t"])
    if "l" in node:
        return [_decode(v, arrays, depth + 1) for v in node["l"]]
    if "d" in node:
        return {_decode(k, arrays, depth + 1): _decode(v, arrays, depth + 1) for k, v in node["d"]}
    raise ValueError("not a node")


def dumps(message) -> bytes:
    arrays: list = []
    header = _encode(message, arrays)
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
             **{f"a{i}": a for i, a in enumerate(arrays)})
    return buf.getvalue()


class _View:
    """A file over bytes already in memory, for zipfile: no copy of them (io.BytesIO copies a bytearray), and no
    read longer than what is left, whatever length the archive's directory claims."""

    def __init__(self, data):
        self.view, self.pos = memoryview(data).cast("B"), 0

    def seekable(self):
        return True

    def seek(self, offset, whence=io.SEEK_SET):
        self.pos = max(0, offset + (0, self.pos, len(self.view))[whence])
        return self.pos

    def tell(self):
        return self.pos

    def read(self, n=-1):
        end = len(self.view) if n is None or n < 0 else min(len(self.view), self.pos + n)
        chunk = self.view[self.pos:end].tobytes()
        self.pos += len(chunk)
        return chunk


def _array(zf: zipfile.ZipFile, info: zipfile.ZipInfo, view: memoryview) -> np.ndarray:
    """One stored ``.npy`` member, checked against its size before anything the size of its data is allocated."""
    with zf.open(info) as f:  # the magic and header only (numpy refuses headers over 10,000 bytes anyway)
        head = io.BytesIO(f.read(1 << 14))
    version = np.lib.format.read_magic(head)
    if version not in ((1, 0), (2, 0)):
        raise ValueError(f"npy version {version}")
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(head)
    skip = head.tell()
    if dtype.hasobject or dtype.itemsize == 0:
        raise ValueError(f"dtype {dtype}")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes != info.file_size - skip:
        raise ValueError(f"{info.filename} declares {nbytes} bytes and holds {info.file_size - skip}")
    # Where the member's data starts: after its local header (30 bytes, then its name and extra field).
    name_len, extra_len = struct.unpack_from("<HH", view, info.header_offset + 26)
    start = info.header_offset + 30 + name_len + extra_len + skip
    if start + nbytes > len(view):
        raise ValueError(f"{info.filename} runs past the end")
    arr = np.empty(shape, dtype, order="F" if fortran else "C")
    if nbytes:  # copied straight in, in memory order: no intermediate bytes object
        arr.reshape(-1, order="A").view(np.uint8)[:] = view[start:start + nbytes]
    return arr


def _unzip(data) -> tuple[bytes, dict]:
    view = memoryview(data).cast("B")
    with zipfile.ZipFile(_View(view)) as zf:
        infos = zf.infolist()
        names = [info.filename for info in infos]
        if len(set(names)) != len(names) or not all(_MEMBER.fullmatch(name) for name in names):
            raise ValueError("unexpected members")
        # Stored, not compressed: a member is exactly as large as the bytes that carry it, and together they
        # are no larger than the message (its length was bounded when it was received).
        if any(i.compress_type != zipfile.ZIP_STORED or i.file_size != i.compress_size for i in infos):
            raise ValueError("a compressed member")
        if sum(i.file_size for i in infos) > len(view):
            raise ValueError("members larger than the message")
        if zf.getinfo("header.npy").file_size > MAX_HEADER:
            raise ValueError("header too large")
        arrays = {name[:-4]: _array(zf, info, view) for name, info in zip(names, infos)}
    header = arrays.pop("header")
    if header.dtype != np.uint8 or header.ndim != 1:
        raise ValueError("header is not text")
    return header.tobytes(), arrays


def loads(data: bytes | bytearray):
    try:
        header, arrays = _unzip(data)
        return _decode(json.loads(header.decode()), arrays)
    except Exception as exc:  # noqa: BLE001 - whatever the bytes were, they are not a message (RecursionError too)
        raise ValueError(f"malformed message ({type(exc).__name__}: {str(exc)[:200]})") from None


def frame(message) -> bytes:
    """A message as it goes down a pipe: its length, then its bytes."""
    data = dumps(message)
    return struct.pack("<Q", len(data)) + data


def send(fd: int, message) -> None:
    view = memoryview(frame(message))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_into(fd: int, buf: bytearray, deadline: float | None) -> None:
    """Fill ``buf`` from ``fd``. Each read first waits (poll) for data, until the deadline if there is one: a
    read then returns what is there, so none blocks past it, however the sender stalls."""
    view, got = memoryview(buf), 0
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    while got < len(view):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise Late(f"message incomplete at the deadline ({got} of {len(view)} bytes)")
        if not poller.poll(None if left is None else math.ceil(left * 1000)):
            continue
        try:
            n = os.readv(fd, [view[got:]])
        except BlockingIOError:  # a non-blocking fd with nothing after all: wait again
            continue
        if not n:
            raise EOFError("the other side closed the connection")
        got += n


def recv(fd: int, deadline: float | None = None, limit: int = MAX_MESSAGE, spend=None):
    """The next message on ``fd``. ``deadline`` (a ``time.monotonic()`` value): raise :class:`Late` (a
    TimeoutError) rather than wait past it, for the length or the body; None waits as long as it takes (for
    requests from the grader, which is trusted). A length above ``limit`` is refused (ValueError) unread.
    ``spend(n)``, when given, is told each accepted length before the body is read, and may refuse it by raising
    (a budget of bytes for all of a submission's replies)."""
    head = bytearray(8)
    _read_into(fd, head, deadline)
    (n,) = struct.unpack("<Q", head)
    if n > limit:
        raise ValueError(f"message of {n} bytes is too large (the limit is {limit})")
    if spend is not None:
        spend(n)
    body = bytearray(n)  # one buffer, filled in place: the message is held once
    _read_into(fd, body, deadline)
    return loads(body)
