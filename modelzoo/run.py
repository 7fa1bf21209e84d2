"""Scheduling: a plan's tasks -> Ray (or this process) -> ZooWriter, with live progress.

Workers return arrays; the driver writes each finished task as one sealed shard in completion
order. Progress is reported per trained epoch of every task: in this process through a callback,
from Ray workers through a small progress actor that the driver polls while it waits, so the ETA
is meaningful within the first minute of any zoo. A plan of one task has nothing to parallelise
and runs in this process (``--executor auto``): small previews never wait for Ray to start. Ray is
imported here and nowhere else.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .devices import worker_device
from .errors import ModelZooError, StoreError
from .plan import Task, plan
from .spec import Spec
from .store import format as fmt
from .store.writer import ZooWriter
from .train.result import STATUS_OK, RunResult
from .train.task import run_task

STORE_ENV = "MODELZOO_STORE"
DEFAULT_STORE = "storage"
EXECUTORS = ("auto", "ray", "local")
POLL_SECONDS = 0.5  # how often the driver asks Ray workers for their progress


def runs_on_cluster(executor: str, address: str | None) -> bool:
    """Tasks go to a Ray cluster elsewhere (so this machine's devices do not matter)."""
    return executor in ("ray", "auto") and bool(address or os.environ.get("RAY_ADDRESS"))


def uses_ray(executor: str, address: str | None, tasks: int, max_workers: int | None) -> bool:
    """'auto' trains in this process unless there is a cluster, several tasks, or --max-workers
    (which only means something to Ray)."""
    if executor != "auto":
        return executor == "ray"
    return runs_on_cluster(executor, address) or tasks > 1 or max_workers is not None


def default_store() -> Path:
    return Path(os.environ.get(STORE_ENV, DEFAULT_STORE))


@dataclass
class Progress:
    """Where a generate call stands (what the progress bar shows)."""

    model_epochs: int = 0
    model_epochs_total: int = 0
    models: int = 0  # models finished and stored
    models_total: int = 0
    failed: int = 0  # stored with status diverged or failed


# ------------------------------------------------------------------------------- executors

TickBoard = Callable[[int, int], None]  # (task index, model-epochs trained so far in that task)
Begin = Callable[[Task], Any]  # the writer's shard for a streaming task (ZooWriter.begin)
STREAM_DRAIN_SECONDS = 120.0  # how long the driver waits for a finished task's last epochs


def _ticker(task: Task, board: TickBoard) -> Callable[[int], None]:
    """Model-epochs of one task, summed over the engine threads that report them."""
    done, lock = [0], threading.Lock()

    def tick(n: int) -> None:
        with lock:
            done[0] += n
            board(task.index, done[0])

    return tick


class InProcessExecutor:
    """Runs tasks one after another in this process with every core: no Ray, useful on GPU boxes,
    for small plans and in tests. (Grouping is the same as under Ray, so the weights are too.)"""

    def map(
        self, tasks: Sequence[Task], board: TickBoard, begin: Begin
    ) -> Iterator[tuple[Task, list, Any]]:
        threads = os.cpu_count() or 1
        for task in tasks:
            shard = begin(task) if task.stream else None
            try:
                results = run_task(replace(task, threads=threads), _ticker(task, board),
                                   None if shard is None else shard.put)  # fmt: skip
            except BaseException:
                if shard is not None:
                    shard.abort()
                raise
            yield task, results, shard

    def close(self) -> None:
        pass


def _remote_task(task: Task, board: Any) -> tuple[list[RunResult], int]:
    """What a Ray worker runs: the task on the GPU Ray assigned to it (if any), reporting each
    epoch's progress, and (streaming tasks) each stored epoch's weights, to the driver's board.
    Returns the results and how many weight rows it streamed."""
    import ray

    task = pinned(task)
    tick = _ticker(task, lambda index, value: board.set.remote(index, value))  # fire and forget
    streamed = [0]

    def sink(model_id: int, row: int, values) -> None:
        # the driver fetches the object and writes it; this process keeps only the current epoch
        board.put.remote(task.index, model_id, row, [ray.put(values)])
        streamed[0] += 1

    results = run_task(task, tick, sink if task.stream else None)
    return results, streamed[0]


def pinned(task: Task) -> Task:
    """The task as a Ray worker runs it: on the GPU Ray assigned to this worker."""
    import ray

    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    return replace(task, device=worker_device(task.device, ray.get_gpu_ids(), visible))


class _ProgressBoard:
    """A Ray actor between workers and the driver: model-epochs per task index, and the weight
    rows streaming tasks have sent but the driver has not written yet."""

    def __init__(self) -> None:
        self.done: dict[int, int] = {}
        self.rows: list = []

    def set(self, index: int, value: int) -> None:
        self.done[index] = max(value, self.done.get(index, 0))

    def put(self, index: int, model_id: int, row: int, refs: list) -> None:
        self.rows.append((index, model_id, row, refs))

    def poll(self) -> tuple[dict[int, int], list]:
        rows, self.rows = self.rows, []
        return dict(self.done), rows


class RayExecutor:
    """Submits tasks to a local Ray (sized to the machine) or to a cluster (--address/RAY_ADDRESS)."""

    def __init__(self, address: str | None, max_workers: int | None, cpus_per_task: float,
                 gpus_per_task: float, max_retries: int,
                 say: Callable[[str], None] | None = None) -> None:  # fmt: skip
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
                if say:
                    say(f"connecting to the Ray cluster at {address}")
                ray.init(address=address, **kwargs)
            else:
                cpus = os.cpu_count() or 1
                cpus = min(cpus, max_workers) if max_workers else cpus
                if say:
                    say(f"starting local Ray ({cpus} CPUs) ...")
                ray.init(num_cpus=cpus, include_dashboard=False, **kwargs)
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
        self.board = ray.remote(num_cpus=0)(_ProgressBoard).remote()
        self.remote = ray.remote(_remote_task).options(
            num_cpus=cpus_per_task, num_gpus=gpus_per_task, max_retries=max_retries
        )

    def map(
        self, tasks: Sequence[Task], board: TickBoard, begin: Begin
    ) -> Iterator[tuple[Task, list, Any]]:
        ray = self.ray
        pending = list(tasks)[::-1]
        in_flight: dict = {}
        shards: dict[int, Any] = {}  # task index -> the shard its streamed rows go into
        received: dict[int, int] = {}

        def poll() -> None:
            done, rows = ray.get(self.board.poll.remote())
            for index, value in done.items():
                board(index, value)
            for index, model_id, row, refs in rows:
                values = ray.get(refs[0])
                if shards.get(index) is not None:
                    shards[index].put(model_id, row, values)
                received[index] = received.get(index, 0) + 1

        try:
            while pending or in_flight:
                while pending and len(in_flight) < self.max_in_flight:
                    task = pending.pop()
                    if task.stream:
                        shards[task.index] = begin(task)
                    in_flight[self.remote.remote(task, self.board)] = task
                finished, _ = ray.wait(list(in_flight), num_returns=1, timeout=POLL_SECONDS)
                poll()
                for ref in finished:
                    task = in_flight.pop(ref)
                    try:
                        results, streamed = ray.get(ref)
                    except ModelZooError as error:  # bad input found in a worker (missing data)
                        raise ModelZooError(_user_message(error)) from None
                    except (ray.exceptions.RayError, OSError) as error:  # lost after retries
                        results, streamed = _task_failed(task, error), received.get(task.index, 0)
                    deadline = time.monotonic() + STREAM_DRAIN_SECONDS
                    while received.get(task.index, 0) < streamed:  # the last rows in transit
                        if time.monotonic() > deadline:
                            raise ModelZooError(f"task {task.index}: streamed weights did not "
                                                "arrive; rerun the command to retrain it")  # fmt: skip
                        time.sleep(0.05)
                        poll()
                    yield task, results, shards.pop(task.index, None)
        finally:
            for shard in shards.values():
                if shard is not None:
                    shard.abort()

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
    return [RunResult.failed(run.model_id, run.key, len(run.stored_epochs), task.parameters,
                             task.classes, message) for run in task.runs]  # fmt: skip


# ------------------------------------------------------------------------------- generate


@dataclass
class Report:
    zoo_dir: Path
    trained: int = 0
    skipped: int = 0
    status: dict = field(default_factory=dict)
    seconds: float = 0.0
    executor: str = ""


def recorded_grouping(zoo_dir: Path) -> dict | None:
    """The grouping an existing zoo was generated with (None for a new or older zoo)."""
    if not (zoo_dir / fmt.MANIFEST).is_file():
        return None
    grouping = fmt.read_manifest(zoo_dir).get("grouping")
    return grouping if isinstance(grouping, dict) else None


def generate(
    spec: Spec,
    store: Path | None = None,
    *,
    address: str | None = None,
    max_workers: int | None = None,
    engine: str | None = None,
    device: str | None = None,
    limit: int | None = None,
    sample: int | None = None,
    data_dir: str | None = None,
    restart: bool = False,
    executor: str = "auto",
    models_per_task: int | None = None,
    progress: Callable[[Progress], None] | None = None,
    say: Callable[[str], None] | None = None,
) -> Report:
    """Train every missing model of ``spec`` into ``store/<name>``; resumes what exists.

    ``executor``: "ray", "local" (this process), or "auto" (Ray for a cluster address or a plan
    of several tasks, else this process). ``progress`` receives a :class:`Progress` after every
    trained epoch of any task; ``say`` receives one-line notices ("starting local Ray ...")."""
    if executor not in EXECUTORS:
        raise ModelZooError(f"--executor: expected one of {', '.join(EXECUTORS)}, got {executor!r}")
    started = time.perf_counter()
    store = Path(store) if store is not None else default_store()
    if store.exists() and not store.is_dir():
        raise StoreError(f"{store}: --store must be a folder, and this is a file")
    above = next((p for p in store.absolute().parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise StoreError(f"{store}: --store cannot be created: {above} is a file")
    zoo_dir = store / spec.name
    recorded = None if restart else recorded_grouping(zoo_dir)
    the_plan = plan(spec, limit, engine, device, data_dir, models_per_task,
                    not runs_on_cluster(executor, address), sample=sample,
                    recorded=recorded)  # fmt: skip
    spec = the_plan.spec
    dataset = {"name": spec.resolved["dataset"]["name"],
               "input_shape": list(the_plan.architecture.input_shape),
               "num_classes": the_plan.architecture.num_classes,
               "spec": spec.resolved["dataset"]}  # fmt: skip
    try:
        writer = ZooWriter(zoo_dir, spec, the_plan.runs, dataset, the_plan.layout, restart,
                           grouping=the_plan.grouping)  # fmt: skip
    except OSError as error:
        raise StoreError(f"{zoo_dir}: cannot write the zoo: {error}") from None
    try:
        return _train_missing(the_plan, writer, started, address, max_workers, executor,
                              progress, say)  # fmt: skip
    finally:
        writer.close()


def _train_missing(the_plan, writer: ZooWriter, started: float, address, max_workers,
                   executor: str, progress, say) -> Report:  # fmt: skip
    done = writer.done_ids()
    todo = [t for t in the_plan.tasks if any(r.model_id not in done for r in t.runs)]
    selected_ids = {r.model_id for r in the_plan.selected}
    report = Report(zoo_dir=writer.dir, skipped=len(selected_ids & done))
    if not todo:
        report.seconds = time.perf_counter() - started
        return report
    execution = the_plan.spec.resolved["execution"]
    gpus = execution["gpus_per_task"]
    if gpus == 0 and todo[0].device.startswith("cuda"):
        gpus = 1.0  # a CUDA task without a GPU share would see no device: one task per GPU
    use_ray = uses_ray(executor, address, len(todo), max_workers)
    report.executor = "ray" if use_ray else "local"
    if use_ray:
        pool = RayExecutor(address, max_workers, execution["cpus_per_task"], gpus,
                           execution["max_retries"], say)  # fmt: skip
    else:
        pool = InProcessExecutor()
    state = Progress(
        model_epochs_total=sum(t.model_epochs for t in todo),
        models_total=len(selected_ids - done),
    )
    per_task: dict[int, int] = {}
    finished = 0  # model-epochs of finished tasks
    closed: set[int] = set()  # their indices: the progress actor keeps reporting their last count

    def refresh() -> None:
        state.model_epochs = finished + sum(per_task.values())
        if progress:
            progress(state)

    def board(index: int, value: int) -> None:
        if index in closed:
            return
        per_task[index] = value
        refresh()

    refresh()
    try:
        for task, results, shard in pool.map(todo, board, lambda t: writer.begin(t.runs)):
            # a task re-run for a missing model trains its stored neighbours too (same grouping
            # as a clean run); only the missing ones are written
            fresh = [r for r in results if r.model_id in selected_ids and r.model_id not in done]
            try:
                writer.add(fresh, shard)
            except OSError as error:  # disk full, store removed or read-only: earlier shards stay
                raise StoreError(f"{writer.dir}: cannot write the zoo: {error}") from None
            done.update(r.model_id for r in fresh)
            report.trained += len(fresh)
            per_task.pop(task.index, None)
            closed.add(task.index)
            finished += task.model_epochs
            state.models = report.trained
            state.failed += sum(r.status != STATUS_OK for r in fresh)
            refresh()
    finally:
        pool.close()
    report.status = writer.counts()
    report.seconds = time.perf_counter() - started
    return report
