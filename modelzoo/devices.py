"""Device names as users write them (``--device``), checked once, and the device *kind* that a
zoo's grouping depends on.

Grouping must be reproducible on every machine of a kind (see docs/engine.md), so it may depend
on "cpu" or "cuda" but never on which GPU, how much memory is free, or how many there are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

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


def worker_device(device: str, gpu_ids: list, visible: str | None) -> str:
    """The device a Ray worker trains on: the GPU Ray assigned to it, not the driver's index.

    Ray gives a task with a GPU share the ids in ``ray.get_gpu_ids()`` and narrows
    ``CUDA_VISIBLE_DEVICES`` to them, so inside the worker the assigned GPU is ``cuda:<its
    position among the visible ones>`` (``cuda:0`` for one GPU), whatever ``--device cuda:N`` the
    driver was given. CPU (and MPS) tasks, and tasks Ray assigned no GPU, keep their device.
    """
    if torch.device(device).type != "cuda" or not gpu_ids:
        return device
    order = [v.strip() for v in (visible or "").split(",") if v.strip()]
    first = str(gpu_ids[0])
    return f"cuda:{order.index(first) if first in order else 0}"


@contextlib.contextmanager
def deterministic_kernels(device: str) -> Iterator[None]:
    """Deterministic CUDA kernels while a task trains (restored afterwards).

    cuDNN's default weight-gradient algorithms and cuBLAS's split-K reductions accumulate with
    atomics, so two runs of one model on one GPU could differ in their last bits. This asks torch
    for deterministic algorithms (``warn_only``: an op without one warns instead of failing the
    task; the GPU check watches for such warnings), turns off cuDNN autotuning (it may pick
    other kernels per run) and sets the cuBLAS workspace that deterministic GEMMs need. On CPU it
    does nothing: the engine is deterministic there already (one intra-op thread, tested).
    """
    if torch.device(device).type != "cuda":
        yield
        return
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    before = (torch.are_deterministic_algorithms_enabled(),
              torch.is_deterministic_algorithms_warn_only_enabled(),
              torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)  # fmt: skip
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before[0], warn_only=before[1])
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = before[2:]
