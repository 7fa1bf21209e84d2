"""Generating new networks from hyper-representations (``modelzoo sample``, seeds 003 and 004).

    from modelzoo.sample import sample, compare, list_samplers
    zoo = sample("runs/ecd", "kde30", n=50, out="storage/kde30_samples")   # a Zoo
    compare("runs/ecd", "all", out="reports/samples", n=50, finetune_epochs=5)

docs/sample.md has every method with its paper and settings.
"""

from .._lazy import lazy_exports

_EXPORTS = {  # submodule: the names it exports, imported on first use
    "api": ("sample", "compare", "Settings"),
    "samplers": ("draw", "get_sampler", "list_samplers", "register_sampler"),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, _EXPORTS)
