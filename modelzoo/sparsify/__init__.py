"""Sparse twins of a zoo: variational-dropout sparsification (Molchanov et al. 2017) continued
from every model's last checkpoint, written as a zoo with the same model ids (docs/sparsify.md)."""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "METRICS": "twin",
    "TwinPlan": "twin",
    "plan_twin": "twin",
    "sparsify": "twin",
    "sparsify_model": "twin",
    "VariationalDropout": "vd",
    "kl_approximation": "vd",
    "log_alpha": "vd",
    "pruned": "vd",
    "reparameterised_moments": "vd",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Exports load on first use, so the CLI (which registers ``sparsify.cli``) starts without
    torch."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
