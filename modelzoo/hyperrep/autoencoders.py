"""The autoencoder registry's two entry points, with every built-in model registered.

The classes register themselves (``@register_autoencoder`` in ``models.py`` and ``sequential.py``);
this module imports both, so listing or building never misses one and no module imports the
registry's users back (the sequential model reuses the attention model's parts).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from ..errors import ModelZooError
from ..tokens import WeightStructure
from . import sequential  # noqa: F401  (registers the sequential autoencoder)
from .models import _AUTOENCODERS


def list_autoencoders() -> list[str]:
    """The registered autoencoder names, sorted."""
    return sorted(_AUTOENCODERS)


def build_autoencoder(model: dict[str, Any], structure: WeightStructure) -> nn.Module:
    """The autoencoder named by ``model["name"]``, sized by the rest of the section."""
    if model["name"] not in _AUTOENCODERS:
        raise ModelZooError(
            f"model.name: unknown autoencoder {model['name']!r}; "
            f"choose one of: {', '.join(list_autoencoders())}"
        )
    cls = _AUTOENCODERS[model["name"]]
    return cls(model, cls.token_plan(structure, model))  # type: ignore[attr-defined]
