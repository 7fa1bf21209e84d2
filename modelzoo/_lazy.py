"""Lazy package exports: a package's public names import their submodule when first used."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_exports(package: str, exports: dict[str, tuple[str, ...]]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``, whose ``exports`` map each submodule to the names
    it exports: a name's submodule is imported when the name is first used.

    The science layer's packages export this way because the command line registers their
    commands: importing the package must not import torch, pandas or scikit-learn, so that
    ``modelzoo --help`` and the start of every command stay fast."""

    home = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f".{home[name]}", package), name)

    return __getattr__
