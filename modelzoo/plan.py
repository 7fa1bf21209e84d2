"""Planning a zoo: spec -> runs -> tasks, before anything is trained (and what ``--dry-run`` shows).

Runs of one training shape (``Run.shape_key``) are cut into tasks in model-id order, with a group
size that is a pure function of the spec, the architecture and the device *kind*: never of free
memory, of which GPU, or of the worker count. The first ``generate`` records the grouping in the
zoo's manifest and every resume reuses it, so a zoo is cut the same way on every rerun. (On CPU a
model's bits do not depend on its group at all, tested; on CUDA cuDNN may pick kernels by group
count, which is why the grouping must not drift.) This module trains nothing and imports no Ray.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from .architectures import ArchitecturePlan, get_architecture, plan_architecture
from .data import DataConfig, dataset_info, input_shape
from .devices import check_device_here, device_kind, resolve_device
from .errors import DataError, ModelZooError
from .spec import Run, Spec, canonical_json, expand, runs_by_shape, sample_runs, varying_columns

# Evaluation runs the same examples through all M models, in chunks bounded two ways (measured,
# docs/engine.md): on CPU the widest convolutional activation of a chunk should stay cache-sized
# (2M values; 4x larger chunks cost 1.7x per example), and every chunk's activations and float64
# logits must fit memory.
EVAL_CACHE_VALUES = 1 << 21
EVAL_VALUES = {"cpu": 1 << 25, "cuda": 1 << 27, "mps": 1 << 25}
# Training batches are gathered for several steps at once, up to this many values (16 MiB):
# a whole epoch of a tetris group, a few steps of a CNN group.
BATCH_GATHER_VALUES = 1 << 22
# A CPU group is split across threads only into parts of at least this many models: below it the
# threads contend for the GIL between tiny ops (tetris MLP, 3 epochs, 2 threads vs 1: 32 models
# 2.2x slower, 128 1.08x, 256 1.02x, 512 0.69x; docs/engine.md).
MIN_MODELS_PER_THREAD = {"mlp": 192, "cnn": 8}
# Models per CPU thread beyond which larger groups stop paying off (measured on a 2-core EPYC,
# docs/engine.md): an MLP step is per-op overhead until ~1000 models, a CNN step is compute-bound
# from ~32 models on and slows down again past ~64 (the activations leave the caches).
CPU_MODELS_PER_THREAD = {"mlp": 1024, "cnn": 48}
# The memory one task may plan for, per device kind: fixed, so that grouping does not depend on
# what else the machine is doing. 8 GiB fits every current CUDA GPU with room for evaluation;
# raise execution.models_per_task for bigger groups on bigger GPUs.
TASK_MEMORY = {"cpu": 2 << 30, "cuda": 8 << 30, "mps": 4 << 30}
REFERENCE_MODELS_PER_TASK = 8  # the reference trainer runs a task's models one after another
# A task whose stored weights would take more than this streams them to the writer epoch by
# epoch instead of returning them at the end (ResNet-18: 45 MB per model and stored epoch).
STREAM_BYTES = 256 << 20


@dataclass(frozen=True)
class Task:
    """One unit of scheduled work: a group of runs one engine trains together on one device."""

    runs: tuple[Run, ...]
    engine: str = "vectorized"
    device: str = "cpu"
    data_dir: str | None = None
    threads: int = 1
    parameters: int = 0  # sizes of a failure record's arrays
    classes: int = 0
    index: int = 0  # position in the plan (progress reports name tasks by it)
    stream: bool = False  # hand weights to the writer per stored epoch (large models)

    @property
    def first_model_id(self) -> int:
        return min(r.model_id for r in self.runs)

    @property
    def model_epochs(self) -> int:
        return sum(int(r.training["epochs"]) for r in self.runs)


def suggest_group_size(
    plan: ArchitecturePlan, batch_size: int, kind: str = "cpu", threads: int = 1
) -> int:
    """Models of one shape group per ``train_vectorized`` call on a device of ``kind``.

    A memory estimate per model (a training step keeps about four values per activation and
    example, the optimiser eight per parameter) against :data:`TASK_MEMORY` minus the evaluation
    chunk; on CPU also at most :data:`CPU_MODELS_PER_THREAD` x ``threads``.
    """
    per_model = 4 * (4 * batch_size * plan.activation_values + 8 * plan.parameters)
    size = int((TASK_MEMORY[kind] - 4 * EVAL_VALUES[kind]) // per_model)
    if kind == "cpu":
        size = min(size, CPU_MODELS_PER_THREAD["cnn" if plan.has_conv else "mlp"] * threads)
    return max(1, size)


def group_sizes(
    spec: Spec, groups: dict[str, list[Run]], plan: ArchitecturePlan, kind: str, cores: int
) -> dict[str, int]:
    """Models per task for each shape group: the spec's hint, else :func:`suggest_group_size`,
    on a CPU no more than keeps ``cores`` busy."""
    execution = spec.resolved["execution"]
    threads = max(1, int(execution["cpus_per_task"]))
    sizes = {}
    for key, runs in groups.items():
        if execution["models_per_task"] != "auto":
            size = int(execution["models_per_task"])
        elif not plan.is_layer_table:
            size = 1  # a ResNet-18 is a whole task: one per worker, GPU or GPU share
        elif execution["engine"] == "reference":
            size = REFERENCE_MODELS_PER_TASK
        else:
            size = suggest_group_size(plan, runs[0].training["batch_size"], kind, threads)
            if kind == "cpu":  # enough tasks to keep every core busy
                size = min(size, max(1, math.ceil(len(runs) / cores)))
        sizes[key] = max(1, size)
    return sizes


@dataclass
class Plan:
    """What a spec expands to: every run, the selected ones, their tasks, the grouping."""

    spec: Spec
    runs: list[Run]
    selected: list[Run]
    selection: str  # "all", "first N (--limit)", "N spread over the grid (--sample)"
    tasks: list[Task]  # tasks of the selected runs
    all_tasks: int  # tasks of the whole spec
    architecture: ArchitecturePlan
    grouping: dict[str, Any]  # recorded in the manifest: device kind, cores, size per shape

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.architecture.input_shape

    @property
    def num_classes(self) -> int:
        return self.architecture.num_classes

    @property
    def layout(self) -> list[dict]:
        return [slot.as_dict() for slot in self.architecture.layout]

    @property
    def parameters(self) -> int:
        return self.architecture.parameters

    @property
    def states(self) -> int:
        """Model states (model x stored epoch) of the selected runs."""
        return states_of(self.selected)

    def summary(self) -> dict:
        """The dry-run report: the selected plan and the whole spec side by side."""
        factors, settings = varying_columns(self.runs)
        covered, _ = varying_columns(self.selected)
        resolved = self.spec.resolved
        return {
            "zoo": self.spec.name,
            "selection": self.selection,
            "models": len(self.selected),
            "models_in_spec": len(self.runs),
            "states": self.states,
            "states_in_spec": states_of(self.runs),
            "tasks": len(self.tasks),
            "tasks_in_spec": self.all_tasks,
            "model_epochs": sum(t.model_epochs for t in self.tasks),
            "epochs": resolved["training"]["epochs"],
            "stored_epochs": len(self.spec.stored_epochs()),
            "parameters": self.parameters,
            "dataset": resolved["dataset"]["name"],
            "input_shape": list(self.architecture.input_shape),
            "num_classes": self.architecture.num_classes,
            "architecture": resolved["architecture"]["name"],
            "engine": resolved["execution"]["engine"],
            "device": self.tasks[0].device if self.tasks else None,
            "models_per_task": max((len(t.runs) for t in self.tasks), default=0),
            "training_groups": len(self.grouping["sizes"]),
            "store_bytes": self.states * self.parameters * 4,
            "store_bytes_in_spec": states_of(self.runs) * self.parameters * 4,
            "factors": {name: len(values) for name, values in factors.items()},
            "factors_covered": {name: len(covered.get(name, [0])) for name in factors},
            "settings": settings,
        }


def states_of(runs: list[Run]) -> int:
    return sum(len(r.stored_epochs) for r in runs)


def check_layout(spec: Spec, runs: list[Run], data_dir: str | None) -> ArchitecturePlan:
    """The architecture plan of the zoo; every dataset section of the grid must give one shape."""
    # every distinct dataset section of the grid (options included), before anything runs
    sections = {canonical_json(r.dataset): r.dataset for r in runs}.values()
    try:
        shapes = {tuple(input_shape(DataConfig.from_section(s, data_dir))) for s in sections}
    except DataError as error:
        raise DataError(f"{spec.path}: {error}") from None
    if len(shapes) != 1:
        raise ModelZooError(
            f"{spec.path}: grid: the dataset settings give different input shapes {sorted(shapes)}; "
            "one zoo holds one parameter layout"
        )
    classes = dataset_info(spec.resolved["dataset"]["name"]).num_classes
    return plan_architecture(spec.resolved["architecture"]["name"], shapes.pop(), classes)


def check_engine(spec: Spec, runs: list[Run]) -> None:
    """Settings the architecture lacks, and work only the reference engine does, fail here with
    one line instead of in every worker."""
    name = spec.resolved["architecture"]["name"]
    architecture = get_architecture(name)
    seen = set()
    for run in runs:
        key = (run.training["activation"], run.training["dropout"])
        if key not in seen:
            seen.add(key)
            try:
                architecture.check_settings(*key)
            except ModelZooError as error:
                raise ModelZooError(f"{spec.path}: {error}") from None
    if spec.resolved["execution"]["engine"] != "vectorized":
        return
    needs = [f"architecture {name!r} (not a layer table)"] if not architecture.is_layer_table else []
    for key, plain in (("schedule", "constant"), ("augment", "none")):
        values = sorted({str(r.training.get(key, plain)) for r in runs} - {plain})
        needs += [f"training.{key} {value}" for value in values]
    if needs:
        verb = "needs" if len(needs) == 1 else "need"
        raise ModelZooError(f"{spec.path}: {', '.join(needs)} {verb} the reference engine: set "
                            "execution.engine: reference (or pass --engine reference)")  # fmt: skip


def with_execution(spec: Spec, engine: str | None, models_per_task: int | None) -> Spec:
    """``spec`` with the command line's engine / models-per-task (the caller's spec is kept)."""
    if not engine and not models_per_task:
        return spec
    resolved = copy.deepcopy(spec.resolved)
    resolved["execution"]["engine"] = engine or resolved["execution"]["engine"]
    if models_per_task:
        resolved["execution"]["models_per_task"] = models_per_task
    return dataclasses.replace(spec, resolved=resolved)


def plan(
    spec: Spec,
    limit: int | None = None,
    engine: str | None = None,
    device: str | None = None,
    data_dir: str | None = None,
    models_per_task: int | None = None,
    device_here: bool = True,
    *,
    sample: int | None = None,
    recorded: dict[str, Any] | None = None,
) -> Plan:
    """Expand, check the layout and cut tasks; trains and writes nothing.

    ``limit`` takes the first N runs, ``sample`` N runs spread over the grid (one of the two).
    ``device_here``: the device is this machine's (false when a Ray cluster runs the tasks).
    ``engine`` and ``models_per_task`` override the spec's execution hints (``Plan.spec`` is the
    spec with them, which the zoo records). ``recorded`` is the grouping of an existing zoo, which
    a resume must reuse.
    """
    spec = with_execution(spec, engine, models_per_task)
    runs = expand(spec)
    if limit is not None and sample is not None:
        raise ModelZooError("--limit and --sample: choose one")
    for flag, value in (("--limit", limit), ("--sample", sample)):
        if value is not None and value < 1:
            raise ModelZooError(f"{flag}: expected a positive number of runs, got {value}")
    if limit is not None:
        selected, selection = runs[:limit], f"first {min(limit, len(runs))} (--limit)"
    elif sample is not None:
        selected = sample_runs(runs, sample)
        selection = f"{len(selected)} spread over the grid (--sample)"
    else:
        selected, selection = runs, "all"
    architecture = check_layout(spec, runs, data_dir)
    check_engine(spec, runs)
    device = resolve_device(device)
    if device_here:
        check_device_here(device)
    groups = dict(runs_by_shape(runs))
    grouping = _grouping(spec, groups, architecture, device_kind(device), recorded, models_per_task)
    chosen = {r.model_id for r in selected}
    threads = max(1, int(spec.resolved["execution"]["cpus_per_task"]))
    pieces, all_tasks = [], 0
    for key, group in groups.items():
        size = grouping["sizes"][key]
        for start in range(0, len(group), size):
            all_tasks += 1
            chunk = tuple(r for r in group[start : start + size] if r.model_id in chosen)
            if chunk:
                pieces.append(chunk)
    pieces.sort(key=lambda chunk: min(r.model_id for r in chunk))
    engine_name = spec.resolved["execution"]["engine"]
    tasks = [
        Task(chunk, engine_name, device, data_dir, threads, architecture.parameters,
             architecture.num_classes, index,
             stream=states_of(list(chunk)) * architecture.parameters * 4 > STREAM_BYTES)
        for index, chunk in enumerate(pieces)
    ]  # fmt: skip
    return Plan(spec, runs, selected, selection, tasks, all_tasks, architecture, grouping)


def _grouping(
    spec: Spec,
    groups: dict[str, list[Run]],
    architecture: ArchitecturePlan,
    kind: str,
    recorded: dict[str, Any] | None,
    override: int | None,
) -> dict[str, Any]:
    """A new zoo's grouping, or the recorded one (checked: a resume must not regroup)."""
    if recorded is None:
        cores = os.cpu_count() or 1
        return {"device_kind": kind, "cores": cores,
                "sizes": group_sizes(spec, groups, architecture, kind, cores)}  # fmt: skip
    if recorded.get("device_kind") != kind:
        raise ModelZooError(
            f"this zoo was generated on {recorded.get('device_kind')!r} and is resumed on "
            f"{kind!r}; models of one zoo come from one device kind (pass --device "
            f"{recorded.get('device_kind')}, or --restart to start over)"
        )
    sizes = dict(recorded.get("sizes", {}))
    if set(sizes) != set(groups):
        raise ModelZooError("the recorded grouping does not match this spec's training shapes")
    if override and any(size != override for size in sizes.values()):
        raise ModelZooError(
            f"--models-per-task {override}: this zoo was grouped with "
            f"{sorted(set(sizes.values()))} models per task; a resume keeps that grouping "
            "(drop the flag, or --restart to regroup)"
        )
    return {"device_kind": kind, "cores": recorded.get("cores"), "sizes": sizes}
