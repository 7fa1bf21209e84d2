"""Fidelity: the statistics the papers publish about their zoos, computed for ours and printed
beside theirs (``fidelity(zoo)``; ``modelzoo fidelity ZOO``). Builds on ``modelzoo probe``."""

from .._lazy import lazy_exports

_EXPORTS = {  # submodule: the names it exports, imported on first use
    "api": ("FidelityReport", "fidelity", "resolve_paper"),
    "published": ("PAPER_ZOOS", "ZOO_OF_SPEC", "Published", "register"),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, _EXPORTS)
