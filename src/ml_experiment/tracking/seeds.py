"""Capture (and optionally set) the seeds of the random number generators a run uses.

`SeedRecorder` wraps the seeding functions of `random`, numpy, torch, tensorflow and keras for the
duration of a block and records every seed passed to them. Libraries that are not imported yet are
never imported eagerly: a `sys.meta_path` hook patches them when the user's code imports them.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any

__all__ = ["SeedRecorder", "derive_seed", "seed_everything"]

# MLflow 3 accepts tag values up to 8000 characters; stay well below it.
_MAX_TAG_CHARS = 5000
_MAX_SEED_CHARS = 200  # one seed given as a long array is shortened
# numpy's legacy global seed must be < 2**32, so every library gets the same range.
_MAX_SEED = 2**32


@dataclass(frozen=True)
class _SeedFunction:
    """One seeding function: where it lives inside its library and the tag its seeds go to."""

    attr: str  # dotted path inside the top-level module, e.g. "random.set_seed"
    tag: str
    arg: str = "seed"  # keyword name of the seed; it is also accepted as the first positional


@dataclass(frozen=True)
class _Library:
    functions: tuple[_SeedFunction, ...]
    seeder: str | None = None  # attr path called to seed the library (None: seeded via others)


# Top-level module name -> what to patch. Module-level so tests (and future integrations) can add
# libraries; the import hook reads it at import time, not when it is installed.
_LIBRARIES: dict[str, _Library] = {
    "random": _Library((_SeedFunction("seed", "seed.random", "a"),), seeder="seed"),
    "numpy": _Library(
        (
            _SeedFunction("random.seed", "seed.numpy"),
            _SeedFunction("random.default_rng", "seed.numpy.default_rng"),
        ),
        seeder="random.seed",
    ),
    "torch": _Library(
        (
            _SeedFunction("manual_seed", "seed.torch"),
            _SeedFunction("random.manual_seed", "seed.torch"),
        ),
        seeder="manual_seed",
    ),
    "tensorflow": _Library(
        (_SeedFunction("random.set_seed", "seed.tensorflow"),), seeder="random.set_seed"
    ),
    # keras.utils.set_random_seed seeds random/numpy/tf/torch through the (patched) functions
    # above as well, so it never needs to be called by seed_everything.
    "keras": _Library((_SeedFunction("utils.set_random_seed", "seed.keras"),)),
}

# Libraries seed_everything imports itself: cheap, and every ML script uses them.
_EAGER = ("random", "numpy")


def derive_seed(base: int, index: int) -> int:
    """Derive a deterministic 32-bit seed for item ``index`` (e.g. a trial) from a base seed.

    Uses SHA-256, so the result is the same in every process, Python version and platform.

    Args:
        base: The base (group) seed.
        index: The item's index, e.g. the trial number.

    Returns:
        An integer in ``[0, 2**32)``.
    """
    digest = hashlib.sha256(f"ml-experiment:{int(base)}:{int(index)}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def seed_everything(seed: int) -> dict[str, str]:
    """Seed `random`, numpy's global generator, and torch / tensorflow when already imported.

    Inside an active `SeedRecorder` the calls are recorded like the user's own. To also seed
    torch / tensorflow when they are imported later, use ``SeedRecorder(seed=...)``.

    Args:
        seed: The seed, ``0 <= seed < 2**32``.

    Returns:
        Tag-like mapping of what was seeded, e.g. ``{"seed.random": "1234", ...}``.

    Raises:
        ValueError: If the seed is out of range.
    """
    seed = _check_seed(seed)
    for name in _EAGER:
        __import__(name)
    seeded: dict[str, str] = {}
    for name, library in list(_LIBRARIES.items()):
        module = sys.modules.get(name)
        if module is not None and _seed_library(module, library, seed):
            seeded[library.functions[0].tag] = str(seed)
    return seeded


class SeedRecorder:
    """Context manager that records every seed given to the known RNG seeding functions.

    On enter it wraps ``random.seed``, ``numpy.random.seed``, ``numpy.random.default_rng``,
    ``torch.manual_seed``, ``tf.random.set_seed`` and ``keras.utils.set_random_seed`` (only in
    libraries already imported; the others are patched by an import hook when imported inside the
    block). On exit the original functions are put back and the hook is removed.

    Calls made through references taken before the block (``from random import seed``) are not
    seen. Nested recorders work when they exit in reverse order of entry.

    Args:
        seed: If given, seed every library now (and each hooked library as it is imported) with it.
    """

    def __init__(self, seed: int | None = None) -> None:
        self._seed = None if seed is None else _check_seed(seed)
        self._lock = threading.RLock()
        self._records: dict[str, dict[str, None]] = {}  # tag -> seeds as an ordered set
        # (owner object, attribute name, original, wrapper), in patch order.
        self._patches: list[tuple[Any, str, Any, Any]] = []
        self._active = False

    @property
    def seed(self) -> int | None:
        """The seed this recorder applies, or None when it only records."""
        return self._seed

    def __enter__(self) -> SeedRecorder:
        with self._lock:
            if self._active:
                raise RuntimeError("This SeedRecorder is already active; create a new one.")
            self._active = True
        _HOOK.add(self)
        for name in list(_LIBRARIES):
            module = sys.modules.get(name)
            if module is not None:
                self._on_import(name, module)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        _HOOK.remove(self)
        with self._lock:
            self._active = False
            for owner, attr, original, wrapper in reversed(self._patches):
                # Only undo our own patch: something else may have replaced it since.
                if getattr(owner, attr, None) is wrapper:
                    setattr(owner, attr, original)
            self._patches.clear()

    def recorded(self) -> dict[str, str]:
        """Return the seeds seen so far as tags, e.g. ``{"seed.numpy": "1234,7"}``.

        Several different seeds for one tag are kept in call order, comma-separated, without
        duplicates.
        """
        with self._lock:
            return {tag: _join(list(values)) for tag, values in self._records.items()}

    def _record(self, tag: str, value: Any) -> None:
        text = _format_seed(value)
        if text is None:
            return
        with self._lock:
            # A reference to a wrapper kept past the block must not add to a finished record.
            if self._active:
                self._records.setdefault(tag, {})[text] = None

    def _on_import(self, name: str, module: ModuleType) -> None:
        """Patch a library (already imported, or just imported under the hook) and maybe seed it."""
        library = _LIBRARIES.get(name)
        if library is None:
            return
        with self._lock:
            if not self._active:
                return
            for function in library.functions:
                self._patch(module, function)
        if self._seed is not None:
            _seed_library(module, library, self._seed)

    def _patch(self, module: ModuleType, function: _SeedFunction) -> None:
        owner_path, _, attr = function.attr.rpartition(".")
        try:
            owner = _resolve(module, owner_path) if owner_path else module
            original = getattr(owner, attr)
        except Exception:  # a library version without this function: nothing to record
            return
        if not callable(original):
            return
        wrapper = _make_wrapper(self, original, function)
        try:
            setattr(owner, attr, wrapper)
        except Exception:  # read-only owner (e.g. a C extension type)
            return
        self._patches.append((owner, attr, original, wrapper))


def _make_wrapper(
    recorder: SeedRecorder, original: Callable[..., Any], function: _SeedFunction
) -> Callable[..., Any]:
    tag, arg = function.tag, function.arg

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        # Record after the call succeeded: a rejected seed did not seed anything.
        value = args[0] if args else kwargs.get(arg)
        with contextlib.suppress(Exception):  # recording must never break the user's code
            recorder._record(tag, value)
        return result

    with contextlib.suppress(Exception):  # some builtins lack attributes it copies
        functools.update_wrapper(wrapper, original)
    return wrapper


def _seed_library(module: ModuleType, library: _Library, seed: int) -> bool:
    if library.seeder is None:
        return False
    try:
        _resolve(module, library.seeder)(seed)
    except Exception:
        return False
    return True


def _resolve(module: ModuleType, path: str) -> Any:
    obj: Any = module
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not hasattr(seed, "__index__"):
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    value = seed.__index__()
    if not 0 <= value < _MAX_SEED:
        raise ValueError(f"seed must be an integer in [0, 2**32), got {seed!r}")
    return value


def _format_seed(value: Any) -> str | None:
    """Render a seed argument as tag text; None when it is not a seed (entropy from the OS)."""
    if value is None:
        return None
    if isinstance(value, int | str):
        text = str(value)
    elif isinstance(value, bytes | bytearray):
        text = bytes(value).hex()
    elif hasattr(value, "__index__"):  # numpy / torch integer scalars
        text = str(value.__index__())
    elif hasattr(value, "bit_generator"):
        return None  # default_rng(existing_generator) passes it through: not a new seed
    elif hasattr(value, "entropy"):  # numpy SeedSequence
        spawn_key = tuple(getattr(value, "spawn_key", ()))
        text = str(value.entropy) + ("/" + "-".join(map(str, spawn_key)) if spawn_key else "")
    elif hasattr(value, "seed_seq"):  # numpy BitGenerator, e.g. PCG64(5)
        return _format_seed(value.seed_seq)
    else:
        try:
            items = list(value)
        except TypeError:
            text = repr(value)
        else:
            # Spaces, not commas: commas separate different seeds in the tag value.
            text = "[" + " ".join(_format_seed(item) or "None" for item in items) + "]"
    return text if len(text) <= _MAX_SEED_CHARS else text[: _MAX_SEED_CHARS - 3] + "..."


def _join(values: list[str]) -> str:
    text = ",".join(values)
    if len(text) <= _MAX_TAG_CHARS:
        return text
    return text[: _MAX_TAG_CHARS - 4].rsplit(",", 1)[0] + ",..."


class _ImportHook:
    """A single `sys.meta_path` finder shared by all active recorders.

    It lets the real finders locate a watched module, then wraps the loader so the active
    recorders patch the module right after it has executed.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recorders: list[SeedRecorder] = []
        self._busy = threading.local()

    def add(self, recorder: SeedRecorder) -> None:
        with self._lock:
            self._recorders.append(recorder)
            if self not in sys.meta_path:
                sys.meta_path.insert(0, self)

    def remove(self, recorder: SeedRecorder) -> None:
        with self._lock:
            if recorder in self._recorders:
                self._recorders.remove(recorder)
            if not self._recorders:
                while self in sys.meta_path:
                    sys.meta_path.remove(self)

    @property
    def installed(self) -> bool:
        return self in sys.meta_path

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname not in _LIBRARIES or getattr(self._busy, "on", False):
            return None
        self._busy.on = True  # other hooks may call importlib.util.find_spec: no recursion
        try:
            spec = None
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.on = False
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return None
        spec.loader = _PatchingLoader(spec.loader, fullname, self)
        return spec

    def notify(self, name: str, module: ModuleType) -> None:
        with self._lock:
            recorders = list(self._recorders)
        for recorder in recorders:  # activation order, so nested patches unwind LIFO
            with contextlib.suppress(Exception):  # never break the user's import
                recorder._on_import(name, module)

    def invalidate_caches(self) -> None:
        pass


class _PatchingLoader:
    """Delegating loader that notifies the hook once the module has executed."""

    def __init__(self, loader: Any, name: str, hook: _ImportHook) -> None:
        self._loader = loader
        self._name = name
        self._hook = hook

    def create_module(self, spec: Any) -> Any:
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module: ModuleType) -> None:
        # Put the real loader back first so nothing keeps a reference to this wrapper.
        spec = getattr(module, "__spec__", None)
        if spec is not None and spec.loader is self:
            spec.loader = self._loader
        if getattr(module, "__loader__", None) is self:
            module.__loader__ = self._loader
        self._loader.exec_module(module)
        self._hook.notify(self._name, module)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)


_HOOK = _ImportHook()
