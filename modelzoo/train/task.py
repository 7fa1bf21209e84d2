"""One unit of scheduled work: train a group of runs and hand back plain arrays.

This is the seam between the scheduler and the engines. It runs in a Ray worker or in the driver
process (the in-process executor) and never touches the store: results travel back to the driver,
which alone writes, so workers on other nodes need no shared disk. An exception while training the
whole group falls back to training its runs one at a time, so that a single bad model is recorded
as failed instead of taking its neighbours down with it.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..data import DataConfig, TrainingData, load_training_data
from ..errors import ModelZooError
from ..spec import Run
from .metrics import RunResult

ENGINES = ("vectorized", "reference")


@dataclass(frozen=True)
class Task:
    runs: tuple[Run, ...]
    engine: str = "vectorized"
    device: str = "cpu"
    data_dir: str | None = None
    threads: int = 1
    parameters: int = 0  # sizes of a failure record's arrays
    classes: int = 0

    @property
    def first_model_id(self) -> int:
        return min(r.model_id for r in self.runs)


def data_config(dataset: dict, data_dir: str | None) -> DataConfig:
    """The data layer's config for a run's ``dataset`` section plus the machine's data folder."""
    normalize = dataset.get("normalize")
    if isinstance(normalize, dict):
        normalize = (tuple(normalize["mean"]), tuple(normalize["std"]))
    return DataConfig(
        name=dataset["name"],
        data_dir=data_dir,
        train_fraction=dataset.get("train_fraction", 1.0),
        split_seed=dataset.get("split_seed", 0),
        resize=dataset.get("resize"),
        grayscale=dataset.get("grayscale", False),
        rgb=dataset.get("rgb", False),
        normalize=normalize,
        download=dataset.get("download", True),
        options=dataset.get("options") or {},
    )


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


def check_device_here(device: str) -> None:
    """Refuse a device this machine does not have (for work that runs on this machine)."""
    parsed = torch.device(device)
    if parsed.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (parsed.index is not None and parsed.index >= count):
            raise ModelZooError(f"--device {device}: this machine has {count} CUDA device(s)")
    elif parsed.type == "mps" and not torch.backends.mps.is_available():
        raise ModelZooError(f"--device {device}: MPS is not available on this machine")


def _engine(name: str) -> Callable[[Sequence[Run], TrainingData, str], list[RunResult]]:
    """The engine's training function: one group at once, or one model after another."""
    if name == "vectorized":
        from .vectorized import train_vectorized

        return lambda rs, data, device: train_vectorized(list(rs), data, device)
    from .reference import train_reference

    return lambda rs, data, device: [train_reference(r, data, device) for r in rs]


def run_task(task: Task) -> list[RunResult]:
    """Train every run of the task; never raises for a model's own failure."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, task.threads))
    try:
        return _train_isolated(task)
    finally:
        torch.set_num_threads(previous)


def _train_isolated(task: Task) -> list[RunResult]:
    device = resolve_device(task.device)
    data = load_training_data(data_config(task.runs[0].dataset, task.data_dir))
    train = _engine(task.engine)
    try:
        return train(task.runs, data, device)
    except Exception:
        if len(task.runs) == 1:
            return [_failed(task, task.runs[0])]
    results = []
    for run in task.runs:
        try:
            results.extend(train([run], data, device))
        except Exception:
            results.append(_failed(task, run))
    return results


def _failed(task: Task, run: Run) -> RunResult:
    lines = traceback.format_exc(limit=3).strip().splitlines()
    return RunResult.failed(run.model_id, run.key, len(run.stored_epochs), task.parameters,
                            task.classes, " | ".join(lines[-3:])[:2000])  # fmt: skip
