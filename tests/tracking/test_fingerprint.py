import dataclasses
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml_experiment.tracking.fingerprint import file_fingerprint, fingerprint


def test_digest_format():
    digest = fingerprint([1, 2, 3])
    assert len(digest) == 64
    int(digest, 16)


def test_equal_arrays_equal_fingerprints_and_one_element_changes_it():
    a = np.arange(1000, dtype=np.float64)
    b = a.copy()
    assert fingerprint(a) == fingerprint(b)
    b[500] += 1e-9
    assert fingerprint(a) != fingerprint(b)


def test_dtype_and_shape_matter():
    a = np.arange(12, dtype=np.int64)
    assert fingerprint(a) != fingerprint(a.astype(np.int32))
    assert fingerprint(a) != fingerprint(a.astype(np.float64))
    assert fingerprint(a) != fingerprint(a.reshape(3, 4))
    assert fingerprint(a.reshape(3, 4)) != fingerprint(a.reshape(4, 3))
    # Same bytes, different dtype.
    assert fingerprint(a) != fingerprint(a.view(np.uint64))


def test_memory_layout_does_not_matter():
    c = np.arange(24.0).reshape(4, 6)
    f = np.asfortranarray(c)
    strided = np.arange(48.0).reshape(4, 12)[:, ::2]
    assert not f.flags.c_contiguous
    assert fingerprint(c) == fingerprint(f)
    assert fingerprint(strided) == fingerprint(np.ascontiguousarray(strided))


def test_non_contiguous_array_hashed_in_blocks(monkeypatch):
    from ml_experiment.tracking import fingerprint as module

    monkeypatch.setattr(module, "_BLOCK", 64)  # many blocks, each a few rows
    big = np.arange(4000.0).reshape(200, 20)[:, ::3]
    assert fingerprint(big) == fingerprint(np.ascontiguousarray(big))


def test_other_dtypes():
    dates = np.array(["2020-01-01", "2021-06-30"], dtype="datetime64[D]")
    assert fingerprint(dates) == fingerprint(dates.copy())
    assert fingerprint(dates) != fingerprint(dates.astype("datetime64[s]"))
    records = np.zeros(3, dtype=[("x", "<f8"), ("y", "<i4")])
    assert fingerprint(records) != fingerprint(np.zeros(3, dtype=[("x", "<f8"), ("z", "<i4")]))
    objects = np.array(["a", 1, None], dtype=object)
    assert fingerprint(objects) == fingerprint(np.array(["a", 1, None], dtype=object))
    assert fingerprint(objects) != fingerprint(np.array(["a", 2, None], dtype=object))
    assert fingerprint(np.array(3.0)) == fingerprint(np.float64(3.0))
    assert fingerprint(np.float32(3.0)) != fingerprint(np.float64(3.0))
    masked = np.ma.array([1, 2, 3], mask=[0, 1, 0])
    assert fingerprint(masked) != fingerprint(np.ma.array([1, 2, 3], mask=[0, 0, 0]))


def test_arrays_are_not_pickled(monkeypatch):
    import pickle

    def refuse(*args, **kwargs):
        raise AssertionError("arrays must be hashed from their buffer")

    monkeypatch.setattr(pickle, "dumps", refuse)
    fingerprint({"X": np.ones((10, 3)), "y": np.zeros(10, dtype=np.int8), "n": [1, "a"]})


def test_python_values():
    assert fingerprint(None) != fingerprint(0)
    assert fingerprint(True) != fingerprint(1)
    assert fingerprint(1) != fingerprint(1.0)
    assert fingerprint("1") != fingerprint(1)
    assert fingerprint("a") != fingerprint(b"a")
    assert fingerprint(b"ab") == fingerprint(bytearray(b"ab"))
    assert fingerprint(2**100) != fingerprint(2**100 + 1)
    assert fingerprint(1 + 2j) != fingerprint(1 - 2j)
    assert fingerprint(float("nan")) == fingerprint(float("nan"))


def test_containers():
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
    assert fingerprint({1: "x", "1": "y"}) == fingerprint({"1": "y", 1: "x"})  # mixed keys
    assert fingerprint([1, 2]) != fingerprint([2, 1])
    assert fingerprint([1, 2]) != fingerprint((1, 2))
    assert fingerprint([[1], 2]) != fingerprint([1, [2]])
    assert fingerprint(["ab", "c"]) != fingerprint(["a", "bc"])
    assert fingerprint({1, 2, 3}) == fingerprint({3, 2, 1})
    assert fingerprint({1, 2}) != fingerprint([1, 2])
    assert fingerprint((np.ones(3), np.zeros(2))) != fingerprint((np.zeros(2), np.ones(3)))


def test_self_containing_list_is_an_error():
    data: list = [1]
    data.append(data)
    with pytest.raises(ValueError, match="contains itself"):
        fingerprint(data)
    shared = [1, 2]
    assert fingerprint([shared, shared]) == fingerprint([[1, 2], [1, 2]])


@dataclasses.dataclass
class Split:
    X: np.ndarray
    name: str


class Custom:
    def __init__(self, value):
        self.value = value


def test_dataclasses_and_pickled_objects():
    assert fingerprint(Split(np.ones(3), "a")) == fingerprint(Split(np.ones(3), "a"))
    assert fingerprint(Split(np.ones(3), "a")) != fingerprint(Split(np.ones(3), "b"))
    assert fingerprint(Custom(1)) == fingerprint(Custom(1))
    assert fingerprint(Custom(1)) != fingerprint(Custom(2))


def test_unpicklable_object_is_a_clear_error():
    with pytest.raises(TypeError, match="Cannot fingerprint an object of type"):
        fingerprint(lambda: None)


def test_pandas():
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, 1.5, 2.5]})
    assert fingerprint(df) == fingerprint(df.copy())
    changed = df.copy()
    changed.loc[1, "c"] = 9.0
    assert fingerprint(df) != fingerprint(changed)
    assert fingerprint(df) != fingerprint(df.rename(columns={"a": "A"}))
    assert fingerprint(df) != fingerprint(df.set_axis([10, 11, 12]))
    assert fingerprint(df) != fingerprint(df.astype({"a": "int32"}))
    assert fingerprint(df["a"]) == fingerprint(df["a"].copy())
    assert fingerprint(df["a"]) != fingerprint(df["a"].rename("other"))
    assert fingerprint(df["a"]) != fingerprint(df["a"].to_numpy())


def test_stable_across_processes():
    code = (
        "import numpy as np; from ml_experiment.tracking.fingerprint import fingerprint; "
        "print(fingerprint({'X': np.arange(10.0), 'names': ['a', 'b'], 'k': {3, 1}, 's': 'é'}))"
    )
    outputs = {
        subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": seed, "PYTHONPATH": os.pathsep.join(sys.path)},
        ).stdout.strip()
        for seed in ("1", "2")
    }
    assert outputs == {
        fingerprint({"X": np.arange(10.0), "names": ["a", "b"], "k": {3, 1}, "s": "é"})
    }


def test_file_fingerprint_is_sha256_of_content(tmp_path):
    path = tmp_path / "data.csv"
    content = b"a,b\n1,2\n" * 100_000
    path.write_bytes(content)
    assert file_fingerprint(path) == hashlib.sha256(content).hexdigest()
    assert file_fingerprint(str(path)) == file_fingerprint(path)


def _make_tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("A")
    (root / "sub" / "b.txt").write_text("B")


def test_directory_fingerprint(tmp_path):
    first, second = tmp_path / "one", tmp_path / "two"
    _make_tree(first)
    _make_tree(second)
    (second / "empty").mkdir()  # empty folders do not count
    assert file_fingerprint(first) == file_fingerprint(second)
    assert file_fingerprint(first) != file_fingerprint(first / "a.txt")

    (second / "sub" / "b.txt").write_text("changed")
    assert file_fingerprint(first) != file_fingerprint(second)
    (second / "sub" / "b.txt").write_text("B")
    (second / "sub" / "b.txt").rename(second / "sub" / "c.txt")
    assert file_fingerprint(first) != file_fingerprint(second)


@pytest.mark.skipif(os.name != "posix", reason="symbolic links")
def test_directory_with_symlinks(tmp_path):
    root = tmp_path / "data"
    _make_tree(root)
    before = file_fingerprint(root)
    (root / "loop").symlink_to(root)  # would recurse forever if followed
    (root / "dangling").symlink_to(tmp_path / "missing")
    after = file_fingerprint(root)
    assert after != before
    assert after == file_fingerprint(root)


def test_missing_path(tmp_path):
    with pytest.raises(FileNotFoundError):
        file_fingerprint(tmp_path / "missing")
