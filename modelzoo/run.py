"""Scheduling: spec -> runs -> tasks -> Ray (or in-process) -> ZooWriter.

Tasks are cut from the *full* expansion in model-id order within each training shape, with a size
fixed by the spec hint or by the device (never by the worker count), so the same spec groups the
same models the same way on every rerun, resume or ``--max-workers`` setting. Workers return arrays;
the driver writes each finished task as one sealed shard in completion order. Ray is imported here
and nowhere else.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .data import dataset_info, input_shape
from .errors import DataError, ModelZooError, StoreError
from .nets import build_model, parameter_layout
from .spec import Run, Spec, expand, runs_by_shape
from .store.writer import ZooWriter
from .train.metrics import STATUS_OK, RunResult
from .train.task import Task, check_device_here, data_config, resolve_device, run_task

STORE_ENV = "MODELZOO_STORE"
DEFAULT_STORE = "storage"
REFERENCE_MODELS_PER_TASK = 8  # the reference trainer runs a task's models one after another


def runs_on_cluster(executor: str, address: str | None) -> bool:
    """Tasks go to a Ray cluster elsewhere (so this machine's devices do not matter)."""
    return executor == "ray" and bool(address or os.environ.get("RAY_ADDRESS"))


def default_store() -> Path:
    return Path(os.environ.get(STORE_ENV, DEFAULT_STORE))


@dataclass
class Plan:
    """What a spec expands to, before anything is trained (the --dry-run report)."""

    spec: Spec
    runs: list[Run]
    selected: list[Run]
    tasks: list[Task]
    input_shape: tuple[int, int, int]
    num_classes: int
    layout: list[dict]
    groups: int

    @property
    def parameters(self) -> int:
        return sum(math.prod(s["shape"]) for s in self.layout)

    @property
    def states(self) -> int:
        return sum(len(r.stored_epochs) for r in self.selected)

    def summary(self) -> dict:
        epochs = self.spec.resolved["training"]["epochs"]
        return {
            "zoo": self.spec.name,
            "models": len(self.selected),
            "models_in_spec": len(self.runs),
            "epochs": epochs,
            "stored_epochs": len(self.spec.stored_epochs()),
            "states": self.states,
            "parameters": self.parameters,
            "dataset": self.spec.resolved["dataset"]["name"],
            "input_shape": list(self.input_shape),
            "architecture": self.spec.resolved["architecture"]["name"],
            "training_groups": self.groups,
            "tasks": len(self.tasks),
            "models_per_task": max((len(t.runs) for t in self.tasks), default=0),
            "engine": self.spec.resolved["execution"]["engine"],
            "estimated_store_bytes": self.states * self.parameters * 4,
            "factors": sorted({k for r in self.runs for k in r.factors}),
        }


def _layout_for(spec: Spec, runs: Sequence[Run], data_dir: str | None) -> tuple[tuple, int, list]:
    try:  # checks every dataset section of the grid (options included) before anything runs
        shapes = {tuple(input_shape(data_config(r.dataset, data_dir))) for r in runs}
    except DataError as error:
        raise DataError(f"{spec.path}: {error}") from None
    if len(shapes) != 1:
        raise ModelZooError(
            f"{spec.path}: grid: the dataset settings give different input shapes {sorted(shapes)}; "
            "one zoo holds one parameter layout"
        )
    shape = shapes.pop()
    classes = dataset_info(spec.resolved["dataset"]["name"]).num_classes
    model = build_model(spec.resolved["architecture"]["name"], shape, classes)
    return shape, classes, [s.as_dict() for s in parameter_layout(model)]


def group_size(
    spec: Spec, runs_in_shape: int, device: str, shape: tuple, classes: int, threads: int
) -> int:
    """Models per task: the spec's hint, else what the device holds, on a CPU no more than keeps
    every core busy. Never the worker count, so grouping (and thus every bit) is reproducible."""
    hint = spec.resolved["execution"]["models_per_task"]
    engine = spec.resolved["execution"]["engine"]
    if hint != "auto":
        return int(hint)
    if engine == "reference":
        return REFERENCE_MODELS_PER_TASK
    from .train.vectorized import suggest_group_size

    cap = suggest_group_size(spec.resolved["architecture"]["name"], shape, classes,
                             spec.resolved["training"]["batch_size"], device, threads)  # fmt: skip
    if device == "cpu":  # enough tasks to keep every core busy
        cores = os.cpu_count() or 1
        cap = min(cap, max(1, math.ceil(runs_in_shape / cores)))
    return max(1, cap)


def plan(
    spec: Spec,
    limit: int | None = None,
    engine: str | None = None,
    device: str | None = None,
    data_dir: str | None = None,
    models_per_task: int | None = None,
    device_here: bool = True,
) -> Plan:
    """Expand, check the layout and cut tasks; trains and writes nothing.

    ``device_here``: the device is this machine's (false when a Ray cluster runs the tasks).
    ``engine`` and ``models_per_task`` override the spec's execution hints; ``Plan.spec`` is the
    spec with them, which is what the zoo records (the caller's spec is left as it was)."""
    if engine or models_per_task:
        resolved = copy.deepcopy(spec.resolved)
        resolved["execution"]["engine"] = engine or resolved["execution"]["engine"]
        if models_per_task:
            resolved["execution"]["models_per_task"] = models_per_task
        spec = dataclasses.replace(spec, resolved=resolved)
    runs = expand(spec)
    if limit is not None:
        if limit < 1:
            raise ModelZooError(f"--limit: expected a positive number of runs, got {limit}")
        selected = runs[:limit]
    else:
        selected = runs
    shape, classes, layout = _layout_for(spec, runs, data_dir)
    device = resolve_device(device)
    if device_here:
        check_device_here(device)
    selected_ids = {r.model_id for r in selected}
    tasks, groups = [], runs_by_shape(runs)
    engine_name = spec.resolved["execution"]["engine"]
    threads = max(1, int(spec.resolved["execution"]["cpus_per_task"]))
    parameters = sum(math.prod(s["shape"]) for s in layout)
    for group in groups.values():
        size = group_size(spec, len(group), device, shape, classes, threads)
        for start in range(0, len(group), size):
            chunk = tuple(r for r in group[start : start + size] if r.model_id in selected_ids)
            if chunk:
                tasks.append(
                    Task(chunk, engine_name, device, data_dir, threads, parameters, classes)
                )
    tasks.sort(key=lambda t: t.first_model_id)
    return Plan(spec, runs, selected, tasks, shape, classes, layout, len(groups))


# ------------------------------------------------------------------------------- executors


class InProcessExecutor:
    """Runs tasks one after another in this process with every core: no Ray, useful on GPU boxes
    and in tests. (Grouping is the same as under Ray, so the weights are too.)"""

    def map(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, list[RunResult]]]:
        threads = os.cpu_count() or 1
        for task in tasks:
            yield task, run_task(dataclasses.replace(task, threads=threads))

    def close(self) -> None:
        pass


class RayExecutor:
    """Submits tasks to a local Ray (sized to the machine) or to a cluster (--address/RAY_ADDRESS)."""

    def __init__(self, address: str | None, max_workers: int | None, cpus_per_task: float,
                 gpus_per_task: float, max_retries: int) -> None:  # fmt: skip
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_DEDUP_LOGS", "0")
        os.environ.setdefault("RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO", "0")
        import ray

        self.ray = ray
        address = address or os.environ.get("RAY_ADDRESS")
        kwargs = dict(log_to_driver=False, logging_level=logging.WARNING, configure_logging=True)
        self._own = not ray.is_initialized()
        if self._own:
            if address:
                ray.init(address=address, **kwargs)
            else:
                cpus = os.cpu_count() or 1
                ray.init(num_cpus=min(cpus, max_workers) if max_workers else cpus,
                         include_dashboard=False, **kwargs)  # fmt: skip
        # a local Ray never grows: a task it cannot place would wait forever
        if self._own and not address:
            have = ray.cluster_resources()
            for key, wanted, resource in (("cpus_per_task", cpus_per_task, "CPU"),
                                          ("gpus_per_task", gpus_per_task, "GPU")):  # fmt: skip
                if wanted > have.get(resource, 0):
                    ray.shutdown()
                    raise ModelZooError(
                        f"execution.{key}: a task asks for {wanted:g} {resource}(s), but the local "
                        f"Ray has {have.get(resource, 0):g} (set it lower, or raise --max-workers)"
                    )
        self.max_in_flight = max_workers or max(
            1, int(ray.cluster_resources().get("CPU", 1) // max(cpus_per_task, 1e-9))
        )
        self.remote = ray.remote(run_task).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries
        )

    def map(self, tasks: Sequence[Task]) -> Iterator[tuple[Task, list[RunResult]]]:
        ray = self.ray
        pending = list(tasks)[::-1]
        in_flight: dict = {}
        while pending or in_flight:
            while pending and len(in_flight) < self.max_in_flight:
                task = pending.pop()
                in_flight[self.remote.remote(task)] = task
            done, _ = ray.wait(list(in_flight), num_returns=1)
            for ref in done:
                task = in_flight.pop(ref)
                try:
                    results = ray.get(ref)
                except ModelZooError as error:  # bad input found in a worker (missing data)
                    raise ModelZooError(_user_message(error)) from None
                except (ray.exceptions.RayError, OSError) as error:  # worker lost after retries
                    results = _task_failed(task, error)
                yield task, results

    def close(self) -> None:
        if self._own:
            self.ray.shutdown()


def _user_message(error: ModelZooError) -> str:
    """The one-line message of a ModelZooError raised in a Ray worker (without Ray's wrapping)."""
    cause = getattr(error, "cause", None)
    if isinstance(cause, ModelZooError):
        return str(cause)
    lines = [line for line in str(error).splitlines() if line.strip()]
    return lines[-1].split(": ", 1)[-1] if lines else type(error).__name__


def _task_failed(task: Task, error: BaseException) -> list[RunResult]:
    message = (
        f"task failed after retries: {type(error).__name__}: {str(error).splitlines()[0][:300]}"
    )
    results = []
    for run in task.runs:
        results.append(RunResult.failed(run.model_id, run.key, len(run.stored_epochs),
                                        task.parameters, task.classes, message))  # fmt: skip
    return results


# ------------------------------------------------------------------------------- generate


@dataclass
class Report:
    zoo_dir: Path
    trained: int = 0
    skipped: int = 0
    status: dict = field(default_factory=dict)
    seconds: float = 0.0


def generate(
    spec: Spec,
    store: Path | None = None,
    *,
    address: str | None = None,
    max_workers: int | None = None,
    engine: str | None = None,
    device: str | None = None,
    limit: int | None = None,
    data_dir: str | None = None,
    restart: bool = False,
    executor: str = "ray",
    models_per_task: int | None = None,
    progress: Callable[[int, int, int], None] | None = None,
) -> Report:
    """Train every missing model of ``spec`` into ``store/<name>``; resumes what exists."""
    started = time.perf_counter()
    store = Path(store) if store is not None else default_store()
    if store.exists() and not store.is_dir():
        raise StoreError(f"{store}: --store must be a folder, and this is a file")
    above = next((p for p in store.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise StoreError(f"{store}: --store cannot be created: {above} is a file")
    the_plan = plan(spec, limit, engine, device, data_dir, models_per_task,
                    not runs_on_cluster(executor, address))  # fmt: skip
    spec = the_plan.spec
    dataset = {"name": spec.resolved["dataset"]["name"], "input_shape": list(the_plan.input_shape),
               "num_classes": the_plan.num_classes, "spec": spec.resolved["dataset"]}  # fmt: skip
    try:
        writer = ZooWriter(
            store / spec.name, spec, the_plan.runs, dataset, the_plan.layout, restart
        )
    except OSError as error:
        raise StoreError(f"{store / spec.name}: cannot write the zoo: {error}") from None
    done = writer.done_ids()
    todo = [t for t in the_plan.tasks if any(r.model_id not in done for r in t.runs)]
    selected_ids = {r.model_id for r in the_plan.selected}
    report = Report(zoo_dir=writer.dir, skipped=len(selected_ids & done))
    if not todo:
        report.seconds = time.perf_counter() - started
        return report
    exec_hints = spec.resolved["execution"]
    gpus = exec_hints["gpus_per_task"]
    if gpus == 0 and todo[0].device.startswith("cuda"):
        gpus = 1.0  # a CUDA task without a GPU share would see no device: one task per GPU
    if executor == "ray":
        pool = RayExecutor(address, max_workers, exec_hints["cpus_per_task"], gpus,
                           exec_hints["max_retries"])  # fmt: skip
    else:
        pool = InProcessExecutor()
    total = len(selected_ids - done)
    failed = 0
    try:
        for _task, results in pool.map(todo):
            # a task re-run for a missing model trains its stored neighbours too (same grouping
            # as a clean run); only the missing ones are written
            fresh = [r for r in results if r.model_id in selected_ids and r.model_id not in done]
            try:
                writer.add(fresh)
            except OSError as error:  # disk full, store removed or read-only: earlier shards stay
                raise StoreError(f"{writer.dir}: cannot write the zoo: {error}") from None
            done.update(r.model_id for r in fresh)
            report.trained += len(fresh)
            failed += sum(r.status != STATUS_OK for r in fresh)
            if progress:
                progress(report.trained, failed, total)
    finally:
        pool.close()
    report.status = writer.counts()
    report.seconds = time.perf_counter() - started
    return report
