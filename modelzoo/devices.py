"""Device names as users write them (``--device``), checked once, and the device *kind* that a
zoo's grouping depends on.

Grouping must be reproducible on every machine of a kind (see docs/engine.md), so it may depend
on "cpu" or "cuda" but never on which GPU, how much memory is free, or how many there are.
"""

from __future__ import annotations

import torch

from .errors import ModelZooError

DEVICE_TYPES = ("cpu", "cuda", "mps")


def resolve_device(device: str | None) -> str:
    """'cuda' when available for None/'auto'; otherwise the given device, checked for spelling."""
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in DEVICE_TYPES:
        raise ModelZooError(f"--device: expected cpu, cuda or cuda:N (or auto), got {device!r}")
    return device


def device_kind(device: str) -> str:
    """'cpu', 'cuda' or 'mps': what grouping may depend on (not the index, not free memory)."""
    return torch.device(device).type


def check_device_here(device: str) -> None:
    """Refuse a device this machine does not have (for work that runs on this machine)."""
    parsed = torch.device(device)
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (parsed.index is not None and parsed.index >= count):
            raise ModelZooError(f"--device {device}: this machine has {count} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ModelZooError(f"--device {device}: MPS is not available on this machine")
