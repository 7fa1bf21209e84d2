"""Probing: predict model properties from weights, weight statistics and embeddings (seed 001's
linear probes; the metanetwork papers' Kendall's tau). ``probe(zoo, features, targets, probe)``."""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "DEFAULT_FEATURES": "api",
    "ProbeResult": "api",
    "probe": "api",
    "run_probe": "api",
    "load_samples": "data",
    "FEATURES": "features",
    "FeatureContext": "features",
    "feature_set": "features",
    "layer_statistics": "features",
    "PROBES": "probes",
    "kendall_tau": "probes",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Exports load on first use, so the CLI (which registers ``probe.cli``) starts without
    pandas, scikit-learn and torch."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
