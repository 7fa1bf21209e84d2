"""Sparse twins of a zoo: variational-dropout sparsification (Molchanov et al. 2017) continued
from every model's last checkpoint, written as a zoo with the same model ids (docs/sparsify.md)."""

from .twin import METRICS, TwinPlan, plan_twin, sparsify, sparsify_model
from .vd import VariationalDropout, kl_approximation, log_alpha, pruned, reparameterised_moments

__all__ = ["METRICS", "TwinPlan", "VariationalDropout", "kl_approximation", "log_alpha", "plan_twin",
           "pruned", "reparameterised_moments", "sparsify", "sparsify_model"]  # fmt: skip
