"""Probing: predict model properties from weights, weight statistics and embeddings (seed 001's
linear probes; the metanetwork papers' Kendall's tau). ``probe(zoo, features, targets, probe)``."""

from .._lazy import lazy_exports

_EXPORTS = {  # submodule: the names it exports, imported on first use
    "api": ("DEFAULT_FEATURES", "ProbeResult", "probe", "run_probe"),
    "data": ("load_samples",),
    "features": ("FEATURES", "FeatureContext", "feature_set", "layer_statistics"),
    "probes": ("PROBES", "kendall_tau"),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, _EXPORTS)
