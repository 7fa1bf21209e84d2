"""Generating new networks from hyper-representations (``modelzoo sample``, seeds 003 and 004).

    from modelzoo.sample import sample, compare, list_samplers
    zoo = sample("runs/ecd", "kde30", n=50, out="storage/kde30_samples")   # a Zoo
    compare("runs/ecd", "all", out="reports/samples", n=50, finetune_epochs=5)

docs/sample.md has every method with its paper and settings.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "sample": "api",
    "compare": "api",
    "Settings": "api",
    "draw": "samplers",
    "get_sampler": "samplers",
    "list_samplers": "samplers",
    "register_sampler": "samplers",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Exports load on first use, so ``modelzoo --help`` does not import torch."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
