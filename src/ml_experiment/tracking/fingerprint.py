"""Stable fingerprints (SHA-256 hex digests) of data sets: in-memory objects, files and folders.

The same data gives the same fingerprint in every process and Python run. Arrays are hashed from
their raw buffers (no pickling, no copy when C-contiguous), so a 1 GiB array costs about as much as
hashing 1 GiB.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
import sys
from pathlib import Path
from typing import Any

__all__ = ["file_fingerprint", "fingerprint"]

_BLOCK = 16 * 1024 * 1024  # non-contiguous arrays are copied at most this much at a time
_PICKLE_PROTOCOL = 4


def fingerprint(obj: Any) -> str:
    """Return a stable SHA-256 hex digest of ``obj``'s data.

    Understands numpy arrays and scalars (dtype, shape and contents), pandas DataFrame / Series /
    Index (when pandas is imported), dicts (order of keys ignored), lists and tuples (order and
    container type matter), sets, dataclasses, str / bytes / int / float / complex / bool / None;
    anything else is pickled (protocol 4).

    Args:
        obj: The data.

    Returns:
        64 hex characters.

    Raises:
        TypeError: If ``obj`` contains something that is neither understood nor picklable.
        ValueError: If ``obj`` contains itself.
    """
    hasher = hashlib.sha256(b"ml-experiment-fingerprint-v1\0")
    _Feeder(hasher).feed(obj)
    return hasher.hexdigest()


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """Return the SHA-256 hex digest of a file's content, or of a folder's files.

    A file's fingerprint equals ``sha256sum`` of it. A folder's covers the sorted relative paths and
    the contents of every file below it (symbolic links to folders are recorded by their target,
    not followed); empty folders are ignored.

    Args:
        path: A file or folder.

    Returns:
        64 hex characters.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
    """
    path = Path(path)
    if path.is_dir():
        return _dir_digest(path)
    if not path.exists():
        raise FileNotFoundError(f"No such file or folder: '{path}'")
    return _file_digest(path)


def _file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _dir_digest(root: Path) -> str:
    entries: list[tuple[str, bytes, str]] = []  # (relative posix path, kind, digest or link target)
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        current = Path(folder)
        for name in dirnames:
            full = current / name
            if full.is_symlink():  # os.walk does not descend into it: record where it points
                entries.append((full.relative_to(root).as_posix(), b"L", os.readlink(full)))
        for name in filenames:
            full = current / name
            rel = full.relative_to(root).as_posix()
            if full.is_file():
                entries.append((rel, b"F", _file_digest(full)))
            elif full.is_symlink():  # dangling link
                entries.append((rel, b"L", os.readlink(full)))
    hasher = hashlib.sha256(b"ml-experiment-dir-v1\0")
    for rel, kind, value in sorted(entries):
        _frame(hasher, kind, rel.encode("utf-8", "surrogateescape"))
        _frame(hasher, b"v", value.encode("utf-8", "surrogateescape"))
    return hasher.hexdigest()


def _frame(hasher: Any, tag: bytes, payload: bytes | memoryview) -> None:
    """Feed a tag and a length-prefixed payload: the encoding stays unambiguous when nested."""
    hasher.update(tag)
    hasher.update(len(payload).to_bytes(8, "little"))
    hasher.update(payload)


def _sub_digest(obj: Any, stack: set[int]) -> bytes:
    hasher = hashlib.sha256()
    _Feeder(hasher, stack).feed(obj)
    return hasher.digest()


class _Feeder:
    def __init__(self, hasher: Any, stack: set[int] | None = None) -> None:
        self._h = hasher
        self._stack = stack if stack is not None else set()  # ids of containers being fed

    def feed(self, obj: Any) -> None:
        np = sys.modules.get("numpy")  # not imported -> obj cannot be a numpy object
        if np is not None and isinstance(obj, np.ndarray | np.generic):
            self._array(np, obj)
            return
        pd = sys.modules.get("pandas")
        if pd is not None and isinstance(obj, pd.DataFrame | pd.Series | pd.Index):
            self._container(obj, self._pandas, pd)
            return
        if obj is None:
            _frame(self._h, b"N", b"")
        elif isinstance(obj, bool):
            _frame(self._h, b"B", b"1" if obj else b"0")
        elif isinstance(obj, int):
            _frame(self._h, b"I", str(obj).encode())
        elif isinstance(obj, float):
            _frame(self._h, b"F", struct.pack("<d", obj))
        elif isinstance(obj, complex):
            _frame(self._h, b"C", struct.pack("<dd", obj.real, obj.imag))
        elif isinstance(obj, str):
            _frame(self._h, b"S", obj.encode("utf-8", "surrogatepass"))
        elif isinstance(obj, bytes | bytearray | memoryview):
            _frame(self._h, b"Y", bytes(obj))
        elif isinstance(obj, dict):
            self._container(obj, self._dict)
        elif isinstance(obj, list | tuple):
            self._container(obj, self._sequence)
        elif isinstance(obj, set | frozenset):
            self._container(obj, self._set)
        elif dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            self._container(obj, self._dataclass)
        else:
            self._pickle(obj)

    def _container(self, obj: Any, method: Any, *args: Any) -> None:
        key = id(obj)
        if key in self._stack:
            raise ValueError(f"Cannot fingerprint a {type(obj).__name__} that contains itself")
        self._stack.add(key)
        try:
            method(obj, *args)
        finally:
            self._stack.discard(key)

    def _sequence(self, obj: list[Any] | tuple[Any, ...]) -> None:
        _frame(self._h, b"L" if isinstance(obj, list) else b"T", str(len(obj)).encode())
        for item in obj:
            self.feed(item)

    def _dict(self, obj: dict[Any, Any]) -> None:
        # Keys of mixed types cannot be sorted; their digests always can.
        pairs = sorted(
            (_sub_digest(k, self._stack), _sub_digest(v, self._stack)) for k, v in obj.items()
        )
        _frame(self._h, b"D", b"".join(k + v for k, v in pairs))

    def _set(self, obj: set[Any] | frozenset[Any]) -> None:
        digests = sorted(_sub_digest(item, self._stack) for item in obj)
        _frame(self._h, b"E", b"".join(digests))

    def _dataclass(self, obj: Any) -> None:
        cls = type(obj)
        _frame(self._h, b"K", f"{cls.__module__}.{cls.__qualname__}".encode())
        self._dict({f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)})

    def _array(self, np: Any, obj: Any) -> None:
        array = np.asarray(obj)
        dtype = array.dtype
        described = str(dtype.descr) if dtype.fields else dtype.str
        _frame(self._h, b"A", f"{described}|{array.shape}".encode())
        if isinstance(obj, np.ma.MaskedArray):
            self._array(np, np.ma.getmaskarray(obj))
        if dtype.hasobject:  # the buffer holds pointers: hash the objects themselves
            self._container(obj, lambda a: self._sequence(a.reshape(-1).tolist()))
            return
        self._h.update(array.nbytes.to_bytes(8, "little"))
        if array.flags.c_contiguous:
            # A uint8 view exports a buffer for every dtype (datetime64 does not) without a copy.
            self._h.update(memoryview(array.reshape(-1).view(np.uint8)))
            return
        # Copy in blocks of rows: the bytes equal those of np.ascontiguousarray(array).
        row_bytes = max(1, array.nbytes // max(1, array.shape[0]))
        rows = max(1, _BLOCK // row_bytes)
        for start in range(0, array.shape[0], rows):
            block = np.ascontiguousarray(array[start : start + rows])
            self._h.update(memoryview(block.reshape(-1).view(np.uint8)))

    def _pandas(self, obj: Any, pd: Any) -> None:
        if isinstance(obj, pd.Index):
            _frame(self._h, b"X", type(obj).__name__.encode())
            self.feed([str(obj.dtype), list(obj.names)])
            self.feed(obj.to_numpy())
            return
        if isinstance(obj, pd.Series):
            _frame(self._h, b"R", str(obj.dtype).encode())
            self.feed(obj.name)
            self.feed(obj.index)
            self.feed(obj.to_numpy())
            return
        _frame(self._h, b"G", str(obj.shape).encode())
        self.feed(obj.columns)
        self.feed(obj.index)
        for position in range(obj.shape[1]):
            column = obj.iloc[:, position]
            _frame(self._h, b"c", str(column.dtype).encode())
            self.feed(column.to_numpy())

    def _pickle(self, obj: Any) -> None:
        import pickle

        try:
            data = pickle.dumps(obj, protocol=_PICKLE_PROTOCOL)
        except Exception as exc:
            raise TypeError(
                f"Cannot fingerprint an object of type {type(obj).__qualname__}: it is not "
                f"picklable ({exc}). Fingerprint its data (arrays, dicts, ...) instead."
            ) from exc
        _frame(self._h, b"P", data)
