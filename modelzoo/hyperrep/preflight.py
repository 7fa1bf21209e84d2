"""What a train-ae run needs before its first step: enough states in each split and enough
memory for one step. Both are refused up front, in one line, before anything is written: a
small zoo would otherwise choose its "best" epoch on nothing, and a step that does not fit would
be killed by the kernel mid-epoch without a word.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import ModelZooError
from .models import Block

ATTENTION_BYTES = 20  # per attention entry and CPU step (measured: 0.16 GB per AttW sample, T 1,043)


def check_split_sizes(zoo: Any, config: dict[str, Any], splits: dict, min_states: int) -> None:
    """Training needs ``min_states`` train states (2 for NT-Xent), and ``train.select=best`` as
    many validation states. Small, ``--limit`` or ``--sample`` zoos can leave a split empty: the
    splits are cut over the planned models."""
    data, select = config["data"], config["train"]["select"]
    sizes = {name: len(split) for name, split in splits.items()}
    where = (f"{zoo.path}: data.splits {list(data['splits'])} (split seed {data['split_seed']}) "
             f"leave {sizes['train']} train / {sizes['val']} validation / {sizes['test']} test "
             "states")  # fmt: skip
    need = f"{min_states} ({'NT-Xent compares two' if min_states == 2 else 'one'})"
    if sizes["train"] < min_states:
        raise ModelZooError(f"{where}; training needs at least {need}: a larger zoo or a larger "
                            "train fraction")  # fmt: skip
    if select == "best" and sizes["val"] < min_states:
        raise ModelZooError(f"{where}; train.select=best needs at least {need} to choose on: "
                            "--set train.select=final, other data.splits or a larger zoo")  # fmt: skip


def attention_bytes(trainer: Any, batch: int) -> int:
    """What one CPU training step of ``batch`` samples holds in attention matrices: every block's
    [samples x views, heads, T, T] scores, softmax, dropout mask and their gradients."""
    tokens = getattr(trainer.model, "window", trainer.plan.shape[0]) + 1  # + compression token
    heads = sum(m.heads for m in trainer.model.modules() if isinstance(m, Block))
    return ATTENTION_BYTES * batch * trainer.views * heads * tokens**2


def available_memory() -> int | None:
    """Bytes the kernel could give this process now (Linux MemAvailable; None elsewhere)."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def check_memory(trainer: Any) -> None:
    """A CPU step whose attention matrices exceed the free memory is refused, with a
    ``train.batch_size`` that fits (e.g. AttW on a CNN zoo: one token per weight)."""
    free = available_memory() if trainer.device.type == "cpu" else None
    batch = trainer.batch
    if free is None or attention_bytes(trainer, batch) <= free:
        return
    fits = min(batch - 1, int(0.8 * free // attention_bytes(trainer, 1)))  # leave some room
    hint = f"--set train.batch_size={fits}" if fits >= 2 else "a smaller model"
    if trainer.config["model"].get("encoding") == "weight":
        hint += " (or model.encoding=neuron: one token per neuron, not per weight)"
    tokens = getattr(trainer.model, "window", trainer.plan.shape[0])
    raise ModelZooError(
        f"{trainer.zoo.path}: a batch of {batch} networks x {trainer.views} view(s) of {tokens} "
        f"tokens needs ~{attention_bytes(trainer, batch) / 1e9:.1f} GB of attention matrices "
        f"per step on CPU; this machine has {free / 1e9:.1f} GB free: {hint}"
    )
