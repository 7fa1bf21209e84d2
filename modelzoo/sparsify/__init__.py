"""Sparse twins of a zoo: variational-dropout sparsification (Molchanov et al. 2017) continued
from every model's last checkpoint, written as a zoo with the same model ids (docs/sparsify.md)."""

from .._lazy import lazy_exports

_EXPORTS = {  # submodule: the names it exports, imported on first use
    "twin": ("METRICS", "TwinPlan", "plan_twin", "sparsify", "sparsify_model"),
    "vd": (
        "VariationalDropout",
        "kl_approximation",
        "log_alpha",
        "pruned",
        "reparameterised_moments",
    ),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, _EXPORTS)
