"""Limits on what a job file may be: its size on disk and its size once YAML aliases expand.

A job file is a few hundred bytes of settings; anything near these limits is a mistake or an
attack (a 9-level YAML alias bomb expands to billions of nodes and used to run for minutes
before a MemoryError). Both are checked before anything is built from the file.
"""

from __future__ import annotations

from typing import Any

import yaml

__all__ = [
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NAME_BYTES",
    "MAX_NODES",
    "check_data",
    "check_name",
    "check_node",
    "too_large",
]

MAX_FILE_BYTES = 1024 * 1024  # a job file or a --params value/file
MAX_NODES = 100_000  # values after aliases are expanded
MAX_DEPTH = 100  # nesting of lists and mappings
MAX_NAME_BYTES = 200  # a job's name, UTF-8


def check_name(value: str) -> str:
    """A job's name, stripped; ValueError if MLflow or the file system would refuse it.

    The name becomes an MLflow experiment (256 characters at most in SQL stores) and a folder
    name under ``mlartifacts/`` (255 bytes with a timestamp added): checked before any run.
    """
    value = value.strip()
    if not value:
        raise ValueError(f"must not be empty, got {value!r}")
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise ValueError(
            f"is {size} bytes long, at most {MAX_NAME_BYTES} are allowed, got {value[:40]!r}..."
        )
    bad = sorted({ch for ch in value if ch in "/\\" or not ch.isprintable()})
    if bad:
        shown = ", ".join(repr(ch) for ch in bad)
        raise ValueError(
            f"must not contain {shown} (it names a folder of the knowledge center), got {value!r}"
        )
    return value


def too_large(size: int) -> str | None:
    """The reason a text of ``size`` bytes is refused, or None."""
    if size <= MAX_FILE_BYTES:
        return None
    return (
        f"is {size / 1e6:.1f} MB, over the {MAX_FILE_BYTES // 1024} KiB a job file may have "
        "(large data belongs in a file the job reads, e.g. a DataLoader)"
    )


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def check_node(root: yaml.Node) -> None:
    """Refuse a composed YAML document that expands past the limits, or refers to itself.

    Aliases make the composed document a graph in which one node may be reached many times;
    the expanded size is counted per node once (memoised), so the check itself stays linear.

    Raises:
        ValueError: one line naming the limit.
    """
    expanded: dict[int, int] = {}  # id(node) -> nodes below it, itself included, expanded
    depth_of: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        if done:
            kids = _children(node)
            expanded[key] = 1 + sum(expanded[id(k)] for k in kids)
            depth_of[key] = 1 + max((depth_of[id(k)] for k in kids), default=0)
            on_path.discard(key)
            if expanded[key] > MAX_NODES:
                raise ValueError(
                    f"expands to more than {MAX_NODES} values (YAML aliases that repeat "
                    "anchors, an alias bomb?)"
                )
            if depth_of[key] > MAX_DEPTH:
                raise ValueError(f"is nested more than {MAX_DEPTH} levels deep")
            continue
        if key in expanded:
            continue
        if key in on_path:
            raise ValueError("a YAML alias refers to the mapping or list that contains it")
        on_path.add(key)
        stack.append((node, True))
        stack.extend((kid, False) for kid in _children(node) if id(kid) not in expanded)
        if len(on_path) > MAX_DEPTH:
            raise ValueError(f"is nested more than {MAX_DEPTH} levels deep")


def check_data(data: Any) -> None:
    """The same limits for parsed JSON (no aliases: count and depth only)."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        count += 1
        if count > MAX_NODES:
            raise ValueError(f"has more than {MAX_NODES} values")
        if depth > MAX_DEPTH:
            raise ValueError(f"is nested more than {MAX_DEPTH} levels deep")
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)
