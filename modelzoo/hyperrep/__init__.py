"""Hyper-representations: autoencoders trained on a zoo's weights (``modelzoo train-ae``).

The three papers' models (attention with neuron or weight tokens, with or without a compression
token; the feed-forward baseline; the sequential SANE-style model), losses (MSE, layer-wise
normalised MSE, NT-Xent, positive contrast, behavioural), presets named after their tables, and a
resumable training loop that writes a run folder (see ``folder.py`` and docs/hyperrep.md).

    from modelzoo.hyperrep import train_autoencoder, load_autoencoder
    rep = train_autoencoder(zoo, preset="ecd", out="runs/ecd")
    z = rep.encode(zoo.weights(epochs=75))      # [models, L]
    w = rep.decode(z)                           # [models, P] in the zoo's layout
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    "HyperRepresentation": "api",
    "load_autoencoder": "api",
    "train_autoencoder": "api",
    "FIELDS": "config",
    "build_config": "config",
    "build_autoencoder": "autoencoders",
    "list_autoencoders": "autoencoders",
    "register_autoencoder": "models",
    "PRESETS": "presets",
    "get_preset": "presets",
    "list_presets": "presets",
    "register_preset": "presets",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Exports load on first use, so ``modelzoo --help`` does not import torch."""
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
