"""Minimal safetensors reader/writer for glora's reference scripts.

Only what glora's C reader needs: dtypes F32 and I64, a "__metadata__" dict of
strings. Layout of a file:

    8 bytes   N, little-endian unsigned 64-bit: length of the JSON header
    N bytes   JSON header, padded with spaces so that N is a multiple of 8
    rest      tensor bytes, little-endian, C order, contiguous with no holes

The header maps each tensor name to {"dtype", "shape", "data_offsets":
[begin, end]} (offsets relative to the start of the tensor bytes). Tensors are
laid out 8-byte ones first, then 4-byte ones, each group sorted by name, so
that every tensor starts at an offset aligned to its element size and the file
is byte-for-byte reproducible.

No dependency beyond numpy (there is no safetensors package on this machine).
"""

import json
import os
import struct

import numpy as np

_DTYPES = {
    "F32": np.dtype("<f4"),
    "I64": np.dtype("<i8"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


def _as_array(value):
    """numpy array from a numpy array or a torch tensor (detached, on CPU)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    arr = np.asarray(value)
    if arr.dtype.kind == "f":
        arr = arr.astype("<f4")
    elif arr.dtype.kind in "iu":
        arr = arr.astype("<i8")
    else:
        raise TypeError("unsupported dtype %s" % arr.dtype)
    return np.ascontiguousarray(arr)


def save(path, tensors, metadata=None):
    """Writes tensors (name -> array/tensor; floats become F32, integers I64)
    and metadata (str -> str) to path, atomically (temporary + rename)."""
    arrays = {name: _as_array(t) for name, t in tensors.items()}
    order = sorted(arrays, key=lambda n: (-arrays[n].dtype.itemsize, n))
    header = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise TypeError("metadata must map str to str")
        header["__metadata__"] = dict(metadata)
    offset = 0
    for name in order:
        arr = arrays[name]
        header[name] = {
            "dtype": _NAMES[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = "%s.tmp%d" % (path, os.getpid())
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in order:
            f.write(arrays[name].tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load(path):
    """Reads a file written by save() (or any F32/I64 safetensors file).
    Returns (tensors: name -> numpy array, metadata: dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: shorter than the 8-byte header length" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError("%s: header length %d past end of file" % (path, n))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = memoryview(blob)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors = {}
    spans = []
    for name, info in header.items():
        dt = _DTYPES.get(info["dtype"])
        if dt is None:
            raise ValueError("%s: tensor '%s': unsupported dtype %s" % (path, name, info["dtype"]))
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * dt.itemsize or end > len(data) or begin > end:
            raise ValueError("%s: tensor '%s': bad data_offsets %r" % (path, name, info["data_offsets"]))
        spans.append((begin, end))
        tensors[name] = np.frombuffer(data[begin:end], dtype=dt).reshape(shape).copy()
    pos = 0
    for begin, end in sorted(spans):
        if begin != pos:
            raise ValueError("%s: tensor bytes have a hole or overlap at %d" % (path, pos))
        pos = end
    if pos != len(data):
        raise ValueError("%s: %d trailing bytes after the tensors" % (path, len(data) - pos))
    return tensors, metadata
