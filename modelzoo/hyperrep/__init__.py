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

from .._lazy import lazy_exports

_EXPORTS = {  # submodule: the names it exports, imported on first use
    "api": ("HyperRepresentation", "load_autoencoder", "train_autoencoder"),
    "config": ("FIELDS", "build_config"),
    "autoencoders": ("build_autoencoder", "list_autoencoders"),
    "models": ("register_autoencoder",),
    "presets": ("PRESETS", "get_preset", "list_presets", "register_preset"),
}
__all__ = sorted(name for names in _EXPORTS.values() for name in names)
__getattr__ = lazy_exports(__name__, _EXPORTS)
