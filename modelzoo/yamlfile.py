"""Reading YAML files people write (zoo specs, train-ae configs, run folders' config.yaml).

One reader for all of them, so every file gets the same guarantees: data only (no YAML tags: a
``!!python/object`` in a downloaded spec must not run anything), no duplicate keys (a second
``lr:`` silently overriding the first is a classic config bug), and every failure is one line
naming the file and, where YAML knows it, the line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .errors import ModelZooError


class _UniqueKeyLoader(yaml.SafeLoader):
    """The safe loader, refusing duplicate and non-scalar mapping keys."""


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, f"a mapping key must be a plain value, got {type(key).__name__}",
                key_node.start_mark,
            )  # fmt: skip
        if isinstance(key, bool) or key is None:  # YAML 1.1 reads yes/no/on/off/~ as these
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key_node.value!r} reads as {key!r}, not as text: quote it",
                key_node.start_mark,
            )  # fmt: skip
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_yaml(path: str | Path, error: type[ModelZooError] = ModelZooError) -> Any:
    """The data in ``path``; any failure raises ``error("<path>: cannot read: <why>")``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as failure:
        raise error(f"{path}: cannot read: {failure.strerror or failure}") from None
    except UnicodeDecodeError:
        raise error(f"{path}: cannot read: not UTF-8 text") from None
    loader = _UniqueKeyLoader(text)  # a SafeLoader: plain data only, tags are refused
    try:
        return loader.get_single_data()
    except yaml.constructor.ConstructorError as failure:
        mark = failure.problem_mark
        where = f"line {mark.line + 1}" if mark else "?"
        problem = failure.problem or str(failure)
        if "tag:yaml.org,2002:merge" in problem:
            problem = "YAML merge keys (<<:) are not supported; write the keys out"
        elif "could not determine a constructor" in problem:
            tag = problem.rpartition(" ")[2].strip("'").replace("tag:yaml.org,2002:", "!!")
            problem = f"YAML tag not allowed ({tag}); these files hold data only"
        raise error(f"{path}: cannot read: {where}: {problem}") from None
    except yaml.YAMLError as failure:
        mark = getattr(failure, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(failure, "problem", None) or str(failure).splitlines()[0]
        raise error(f"{path}: cannot read: malformed YAML at {where}: {problem}") from None
    finally:
        loader.dispose()
