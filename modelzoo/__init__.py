"""modelzoo: generate, store and load model zoos (populations of trained networks used as data)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._version import __version__

# Exported lazily: ``import modelzoo`` (and so the CLI) stays fast; torch loads on first use.
_EXPORTS = {"open_zoo": "zoo", "Zoo": "zoo", "ZooDataset": "dataset"}
__all__ = ["Zoo", "ZooDataset", "__version__", "open_zoo"]

if TYPE_CHECKING:
    from .dataset import ZooDataset
    from .zoo import Zoo, open_zoo


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'modelzoo' has no attribute {name!r}")
