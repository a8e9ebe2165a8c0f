"""Data-only messages between the grader and the process that runs student code.

A message is a length-prefixed ``.npz`` archive (``allow_pickle=False`` both ways):
a JSON header describing the structure, with every array stored as its own
``.npy`` member. Nothing in a message can execute code when it is read, so the
grader never runs anything the student wrote. Values that can cross: None, bool,
int, float, str, NumPy arrays and scalars (not object arrays), PyTorch tensors (sent
as their values, as arrays with their dtype, and received as new CPU tensors),
:class:`Handle` numbers, and tuples, lists and dicts of them.
"""

from __future__ import annotations

import io
import json
import os
import struct
import sys

import numpy as np

MAX_MESSAGE = 512 * 1024 * 1024


class NotData(TypeError):
    """A value that cannot cross (a function, a module, an object array...)."""


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


def _decode(node, arrays):
    if node is None or isinstance(node, (bool, str)):
        return node
    if not isinstance(node, dict) or len(node) not in (1, 2):
        raise ValueError("malformed message")
    if "i" in node:
        return int(node["i"])
    if "H" in node:
        return Handle(int(node["H"]))
    if "f" in node:
        return float(node["f"])
    if "a" in node:
        arr = arrays[f"a{int(node['a'])}"]
        return arr[()] if node.get("scalar") else arr
    if "T" in node:
        import torch

        return torch.from_numpy(np.array(arrays[f"a{int(node['T'])}"]))
    if "t" in node:
        return tuple(_decode(v, arrays) for v in node["t"])
    if "l" in node:
        return [_decode(v, arrays) for v in node["l"]]
    if "d" in node:
        return {_decode(k, arrays): _decode(v, arrays) for k, v in node["d"]}
    raise ValueError("malformed message")


def dumps(message) -> bytes:
    arrays: list = []
    header = _encode(message, arrays)
    buf = io.BytesIO()
    np.savez(buf, header=np.frombuffer(json.dumps(header).encode(), dtype=np.uint8),
             **{f"a{i}": a for i, a in enumerate(arrays)})
    return buf.getvalue()


def loads(data: bytes):
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        header = json.loads(arrays.pop("header").tobytes().decode())
        return _decode(header, arrays)
    except Exception as exc:  # noqa: BLE001 - whatever the bytes were, they are not a message
        raise ValueError(f"malformed message ({type(exc).__name__})") from None


def frame(message) -> bytes:
    """A message as it goes down a pipe: its length, then its bytes."""
    data = dumps(message)
    return struct.pack("<Q", len(data)) + data


def send(fd: int, message) -> None:
    view = memoryview(frame(message))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes:
    chunks, left = [], n
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other side closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def recv(fd: int):
    (n,) = struct.unpack("<Q", _read_exact(fd, 8))
    if n > MAX_MESSAGE:
        raise ValueError(f"message of {n} bytes is too large")
    return loads(_read_exact(fd, n))
