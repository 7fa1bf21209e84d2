"""Running one planned task: train a group of runs and hand back plain arrays.

This is the seam between the scheduler and the engines. It runs in a Ray worker or in the driver
process (the in-process executor) and never touches the store: results travel back to the driver,
which alone writes, so workers on other nodes need no shared disk. An exception while training the
whole group falls back to training its runs one at a time, so that a single bad model is recorded
as failed instead of taking its neighbours down with it.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable, Sequence

import torch

from ..data import DataConfig, TrainingData, load_training_data
from ..devices import deterministic_kernels, resolve_device
from ..plan import Task
from ..spec import Run
from .result import EpochSink, RunResult

ENGINES = ("vectorized", "reference")
Progress = Callable[[int], None]  # called with model-epochs just trained


Train = Callable[[Sequence[Run], TrainingData, str, Progress | None, EpochSink | None], list]


def _engine(name: str) -> Train:
    """The engine's training function: one group at once, or one model after another."""
    if name == "vectorized":
        from .vectorized import train_vectorized

        return lambda rs, data, device, tick, sink: train_vectorized(
            list(rs), data, device, tick, sink=sink
        )
    from .reference import train_reference

    return lambda rs, data, device, tick, sink: [
        train_reference(r, data, device, tick, sink=sink) for r in rs
    ]


def run_task(
    task: Task, progress: Progress | None = None, sink: EpochSink | None = None
) -> list[RunResult]:
    """Train every run of the task; never raises for a model's own failure.

    ``progress(n)`` is called after every trained epoch with the model-epochs it added (from
    engine threads too), so a scheduler can show progress long before the task ends. With a
    ``sink`` (tasks with ``stream`` set) weights are handed over per stored epoch instead of
    returned."""
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, task.threads))
    try:
        with deterministic_kernels(resolve_device(task.device)):
            return _train_isolated(task, progress, sink)
    finally:
        torch.set_num_threads(previous)


def _train_isolated(task: Task, progress: Progress | None, sink: EpochSink | None) -> list:
    device = resolve_device(task.device)
    data = load_training_data(DataConfig.from_section(task.runs[0].dataset, task.data_dir))
    train = _engine(task.engine)
    try:
        return train(task.runs, data, device, progress, sink)
    except Exception:
        if len(task.runs) == 1:
            return [_failed(task, task.runs[0])]
    results = []
    for run in task.runs:  # the group failed as a whole: isolate the bad model(s)
        try:
            results.extend(train([run], data, device, None, sink))
        except Exception:
            results.append(_failed(task, run))
    return results


def _failed(task: Task, run: Run) -> RunResult:
    lines = traceback.format_exc(limit=3).strip().splitlines()
    return RunResult.failed(run.model_id, run.key, len(run.stored_epochs), task.parameters,
                            task.classes, " | ".join(lines[-3:])[:2000])  # fmt: skip
