"""How long a plan will take on this machine: a short timed slice of one task, extrapolated.

``--dry-run`` should tell a user, before anything starts, that a zoo needs minutes or days here.
The slice trains the first task's runs (the real group, so per-model costs include the real
vectorisation) for a few optimiser steps on a cut of the real training data and evaluates them
once on a few hundred examples; the plan's steps and evaluated examples then scale those two
costs up, task by task, divided by the tasks that run at once. It is an estimate: the first steps
run cold, other processes share the machine, and evaluation costs vary with chunking.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from dataclasses import dataclass

import torch

from .data import DataConfig, ImageData, TrainingData, dataset_info, load_training_data
from .errors import DataError, ModelZooError
from .plan import Plan, Task
from .spec import Run

SLICE_STEPS = 12  # optimiser steps timed; 2 for models of a million parameters and more
LARGE_MODEL = 1_000_000
SLICE_EVAL_EXAMPLES = 256
# starting a local Ray before the first task: 4-6 s measured on the 2-core development box (more
# under load); plans of one task train in-process and pay nothing
RAY_START_SECONDS = 5.0


@dataclass(frozen=True)
class Estimate:
    seconds: float  # the whole selected plan, wall clock on this machine
    step_seconds: float  # one optimiser step of the timed group
    eval_seconds_per_example: float  # one evaluated example, all models of the timed group
    timed_models: int
    parallel_tasks: int
    slice_seconds: float  # what measuring took
    steps: int = SLICE_STEPS
    synthetic: bool = False  # timed on random data of the dataset's shape (files absent)
    startup_seconds: float = 0.0  # starting a local Ray, included in ``seconds``

    def describe(self) -> str:
        data = (
            ", on random data of the dataset's shape: its files are absent"
            if self.synthetic
            else ""
        )
        ray = (f", ~{self.startup_seconds:.0f} s of it starting a local Ray"
               if self.startup_seconds else "")
        return (f"~{_duration(self.seconds)} on this machine (estimate: {self.steps} steps of "
                f"{self.timed_models} models timed at {self.step_seconds * 1e3:.1f} ms/step, "
                f"evaluation {self.eval_seconds_per_example * 1e6:.0f} us/example, "
                f"{self.parallel_tasks} task(s) at once{ray}{data})")  # fmt: skip


def estimate_plan(plan: Plan, max_workers: int | None = None, synthetic: bool = True,
                  local_ray: bool = False) -> Estimate:  # fmt: skip
    """Time a slice of ``plan.tasks[0]`` here and extrapolate to every task of the plan.

    Without the dataset's files (a dry run never downloads) and with ``synthetic``, the slice
    runs on random images and labels of the dataset's shape and split sizes: a step costs the
    same whatever the pixels are. ``local_ray``: the plan will start a local Ray first."""
    if not plan.tasks:
        raise ModelZooError("nothing to estimate: the plan has no tasks")
    started = time.perf_counter()
    task = plan.tasks[0]
    first = task.runs[0]
    config = DataConfig.from_section(first.dataset, task.data_dir)
    try:
        data, fake = load_training_data(dataclasses.replace(config, download=False)), False
    except DataError:
        if not synthetic:
            raise
        data, fake = _random_data(config, plan), True
    batch = int(first.training["batch_size"])
    steps = SLICE_STEPS if plan.parameters < LARGE_MODEL else 2
    cut = _cut(data, steps * batch, SLICE_EVAL_EXAMPLES)
    runs = [_one_epoch(run) for run in task.runs]
    previous = torch.get_num_threads()
    torch.set_num_threads(max(1, task.threads))
    try:
        step, per_example = _time_slice(task, runs, cut)
    finally:
        torch.set_num_threads(previous)
    total = 0.0
    for other in plan.tasks:
        scale = len(other.runs) / len(task.runs)
        if task.engine == "reference":
            scale = len(other.runs)  # one model after another; the slice timed one
        for run in other.runs[:1]:
            run_steps = (math.ceil(len(data.train) / run.training["batch_size"])
                         * run.training["epochs"])  # fmt: skip
            examples = len(run.stored_epochs) * sum(
                len(s) for s in (data.train, data.validation, data.test) if s is not None
            )
            total += scale * (run_steps * step + examples * per_example)
    cores = os.cpu_count() or 1
    slots = max(1, int(cores // max(task.threads, 1)))
    parallel = max(1, min(len(plan.tasks), max_workers or slots))
    startup = RAY_START_SECONDS if local_ray else 0.0
    return Estimate(total / parallel + startup, step, per_example, len(task.runs), parallel,
                    time.perf_counter() - started, steps, fake, startup)  # fmt: skip


def _time_slice(task: Task, runs: list[Run], cut: TrainingData) -> tuple[float, float]:
    """(seconds per optimiser step, seconds per evaluated example) of the task's group."""
    if task.engine == "reference":
        from .train.reference import train_reference

        def train(group: list[Run]) -> list:
            return [train_reference(run, cut, task.device) for run in group]

        runs = runs[:1]  # the reference trains one model after another: time one
    else:
        from .train.vectorized import train_vectorized

        def train(group: list[Run]) -> list:
            return train_vectorized(group, cut, task.device)

        train(runs[:2])  # warm-up: the first calls pay for kernel selection and allocation
    clock = time.perf_counter()
    results = train(runs)
    wall = time.perf_counter() - clock
    concurrent = len(runs) if task.engine != "reference" else 1
    train_seconds = float(results[0].metrics["seconds"][-1]) * concurrent
    eval_seconds = max(wall - train_seconds, 0.0) / 2  # epochs 0 and 1 are both evaluated
    steps = math.ceil(len(cut.train) / int(runs[0].training["batch_size"]))
    examples = sum(len(s) for s in (cut.train, cut.validation, cut.test) if s is not None)
    return train_seconds / steps, eval_seconds / examples


def _random_data(config: DataConfig, plan: Plan) -> TrainingData:
    """Images and labels of the dataset's shape and split sizes (for timing only)."""
    info = dataset_info(config.name)
    generator = torch.Generator().manual_seed(0)
    train = round(info.train_size * config.train_fraction)
    sizes = (train, info.train_size - train, info.test_size)

    def split(n: int) -> ImageData | None:
        if n == 0:
            return None
        images = torch.randn((n, *plan.input_shape), generator=generator)
        labels = torch.randint(0, plan.num_classes, (n,), generator=generator)
        return ImageData(images, labels, tuple(str(k) for k in range(plan.num_classes)))

    return TrainingData(split(sizes[0]), split(sizes[1]), split(sizes[2]))


def _one_epoch(run: Run) -> Run:
    training = dict(run.training, epochs=1)
    return dataclasses.replace(run, training=training, stored_epochs=(0, 1))


def _cut(data: TrainingData, train: int, evaluate: int) -> TrainingData:
    def first(split: ImageData | None, n: int) -> ImageData | None:
        if split is None:
            return None
        return ImageData(split.images[:n], split.labels[:n], split.classes)

    return TrainingData(first(data.train, train), first(data.validation, evaluate),
                        first(data.test, evaluate))  # fmt: skip


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"
