"""Probing: predict model properties from weights, weight statistics and embeddings (seed 001's
linear probes; the metanetwork papers' Kendall's tau). ``probe(zoo, features, targets, probe)``."""

from .api import DEFAULT_FEATURES, ProbeResult, probe, run_probe
from .data import load_samples
from .features import FEATURES, FeatureContext, feature_set, layer_statistics
from .probes import PROBES, kendall_tau

__all__ = ["DEFAULT_FEATURES", "FEATURES", "PROBES", "FeatureContext", "ProbeResult",
           "feature_set", "kendall_tau", "layer_statistics", "load_samples", "probe", "run_probe"]  # fmt: skip
