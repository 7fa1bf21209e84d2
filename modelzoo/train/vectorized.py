"""The vectorised engine: a group of runs trained as one stacked network in one process.

Runs that share a shape key (same dataset, architecture, activation, optimiser type, batch size,
epochs and stored epochs) differ only in numbers: seeds, learning rates, weight decay, momentum,
dropout rates, initialisations. ``train_vectorized`` trains such a group at once: the parameters
of its M models are the rows of one ``[M, P]`` tensor, every layer runs once for all models
(:mod:`modelzoo.train.stacked`: grouped convolutions in channels-last memory, batched matrix
products, a hand-written backward pass) and the optimiser (:mod:`modelzoo.optim`) updates
the whole tensor in a few element-wise ops.

Each model sees exactly what :func:`~modelzoo.train.reference.train_reference` shows it: its own
seeded initial weights, its own data order (one gather ``images[order[:, step]]`` for all models),
its own dropout masks (``hashed_uniform`` with its key, the shared step counter and the layer
index), its own hyper-parameters as per-model columns, and the same divergence policy. Nothing is
reduced across models, so a model's weights are bit-identical in every group on one machine (a
lone CNN run gets a twin: oneDNN runs one-group convolutions through other kernels); they match
the reference up to floating-point summation order (grouped vs. single convolution kernels, bmm
vs. addmm): within 1e-5 after several epochs. docs/engine.md has the details and the measurements
behind each choice.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ..architectures import get_architecture, plan_architecture
from ..data import TrainingData
from ..evaluation import SCALAR_METRICS, score_split
from ..init import initialize
from ..nets import flatten_parameters
from ..optim import make_stacked_optimizer
from ..plan import BATCH_GATHER_VALUES, EVAL_CACHE_VALUES, EVAL_VALUES, MIN_MODELS_PER_THREAD
from ..seeding import derive_seed, dropout_keys, epoch_order
from ..spec import Run
from .reference import build_initialised_model
from .result import STATUS_DIVERGED, STATUS_OK, EpochSink, RunResult
from .stacked import Dropout, StackedNet, cross_entropy_step

# Training fields that must agree within a group (with dataset, architecture, stored epochs: the
# shape key, except that runs with and without dropout may share a group).
GROUP_FIELDS = ("epochs", "batch_size", "optimizer", "activation", "loss")

# --------------------------------------------------------------------------- training


def check_group(runs: list[Run]) -> None:
    """Refuse runs that cannot share one stacked network."""
    if not runs:
        raise ValueError("train_vectorized needs at least one run")
    first = runs[0]
    name = first.architecture["name"]
    if not get_architecture(name).is_layer_table:
        raise ValueError(f"architecture {name!r} is not a layer table; train it with the "
                         "reference engine")  # fmt: skip
    for key, plain in (("schedule", "constant"), ("augment", "none")):
        if first.training.get(key, plain) != plain:
            raise ValueError(f"training.{key} {first.training[key]!r} needs the reference engine")
    for run in runs[1:]:
        same = (run.dataset, run.architecture, run.stored_epochs)
        if same != (first.dataset, first.architecture, first.stored_epochs):
            raise ValueError(f"run {run.model_id} differs from run {first.model_id} in dataset, "
                             "architecture or stored epochs; group runs by shape_key")  # fmt: skip
        for key in GROUP_FIELDS:
            if run.training[key] != first.training[key]:
                raise ValueError(f"run {run.model_id} has {key}={run.training[key]!r}, run "
                                 f"{first.model_id} {first.training[key]!r}; group runs by "
                                 "shape_key")  # fmt: skip


def initial_parameters(runs: list[Run], model: torch.nn.Module) -> torch.Tensor:
    """[M, P]: each run's seeded initial weights, as ``build_initialised_model`` gives them.

    ``initialize`` overwrites every parameter from the run's own generator, so one module of the
    architecture is re-initialised per run instead of building M modules (a third of a 1000-MLP
    group's time).
    """
    rows = [flatten_parameters(initialize(model, run.training["init"], run.seed)) for run in runs]
    return torch.stack(rows)


def eval_chunk(net: StackedNet, device: torch.device) -> int:
    """Examples per evaluation call (see EVAL_CACHE_VALUES)."""
    kind = "cuda" if device.type == "cuda" else "cpu"
    chunk = EVAL_VALUES[kind] // (net.models * (net.widest + 8 * net.classes))
    if kind == "cpu" and net.widest_image:
        chunk = min(chunk, EVAL_CACHE_VALUES // (net.models * net.widest_image))
    return max(1, min(4096, chunk))


def train_vectorized(
    runs: list[Run],
    data: TrainingData,
    device: torch.device | str = "cpu",
    progress: Callable[[int], None] | None = None,
    initial: np.ndarray | None = None,
    sink: EpochSink | None = None,
) -> list[RunResult]:
    """Train ``runs`` (one shape group) together; one RunResult per run, in order.

    Each result equals what ``train_reference`` returns for that run (weights within the
    tolerance of docs/engine.md). On CPU with ``torch.get_num_threads()`` = T > 1 the group is split
    into up to T contiguous parts trained by T threads; every part, split or not, runs with one
    intra-op thread (torch's setting is restored afterwards): at these op sizes that is faster
    than intra-op parallelism, does not stall when another process takes a core, and keeps
    results bit-identical whatever the thread count. ``seconds`` is an epoch's training wall time
    divided by the number of models trained concurrently. ``progress(n)`` is called after every
    trained epoch of every part with the part's model count n (from the part's thread), so a
    caller sees model-epochs as they happen. ``initial`` (float32 ``[len(runs), P]``) replaces
    the seeded initial weights, e.g. to fine-tune given networks. With a ``sink`` every stored
    epoch's weights go there as they are recorded (``sink(model_id, row, weights)``, from the
    part's thread) and the results carry none.
    """
    check_group(runs)
    device = torch.device(device)
    if initial is not None:
        initial = np.asarray(initial, dtype=np.float32)
        if initial.ndim != 2 or initial.shape[0] != len(runs):
            raise ValueError(f"initial weights of shape {initial.shape}, expected [{len(runs)}, P]")
    threads = torch.get_num_threads() if device.type == "cpu" else 1
    name = runs[0].architecture["name"]
    per_thread = MIN_MODELS_PER_THREAD["cnn" if get_architecture(name).has_conv else "mlp"]
    parts = max(1, min(threads, len(runs) // per_thread))
    bounds = [len(runs) * i // parts for i in range(parts + 1)]
    pieces = [(runs[a:b], None if initial is None else initial[a:b])
              for a, b in itertools.pairwise(bounds)]  # fmt: skip
    # one intra-op thread always: some oneDNN kernels (3-channel grouped convolutions) sum in
    # another order with more threads, and a model's bits must not depend on the machine's load
    torch.set_num_threads(1)
    try:
        if parts == 1:
            return _train_group(runs, data, device, len(runs), progress, initial, sink)
        with ThreadPoolExecutor(parts, thread_name_prefix="modelzoo-engine") as pool:
            futures = [pool.submit(_train_group, part, data, device, len(runs), progress, start,
                                   sink) for part, start in pieces]  # fmt: skip
            return [result for future in futures for result in future.result()]
    finally:
        torch.set_num_threads(threads)


def _train_group(
    runs: list[Run],
    data: TrainingData,
    device: torch.device,
    concurrent: int,
    progress: Callable[[int], None] | None = None,
    initial: np.ndarray | None = None,
    sink: EpochSink | None = None,
) -> list[RunResult]:
    """The training loop of one stacked network (``concurrent``: models trained in parallel)."""
    train, k = data.train, len(data.train.classes)
    example_shape = tuple(train.images.shape[1:])
    plan = plan_architecture(runs[0].architecture["name"], example_shape, k)
    if len(runs) == 1 and plan.has_conv:
        # oneDNN runs a 1-group convolution through other kernels than a grouped one; a twin
        # keeps a lone run bit-identical to the same run inside any group
        twins = None if initial is None else np.concatenate([initial, initial])
        tick = None if progress is None else (lambda n: progress(n // 2))
        first_only = None if sink is None else functools.partial(_once, sink, set())
        return _train_group(runs * 2, data, device, concurrent, tick, twins, first_only)[:1]
    m, first = len(runs), runs[0]
    training = first.training
    images, labels = train.images.to(device), train.labels.to(device)
    splits = {"train": data.train, "val": data.validation, "test": data.test}
    splits = {name: None if s is None else (s.images.to(device), s.labels.to(device))
              for name, s in splits.items()}  # fmt: skip

    net = StackedNet(plan, training["activation"], m)
    if initial is None:
        params = initial_parameters(runs, build_initialised_model(first, data)).to(device)
    else:
        params = torch.from_numpy(np.array(initial, dtype=np.float32)).to(device)
    grads = torch.zeros_like(params)
    optimizer = make_stacked_optimizer(params, [run.training for run in runs])
    dropout = make_dropout(runs, device)

    stored = first.stored_epochs
    weights = None if sink else np.full((m, len(stored), net.parameters), np.nan, np.float32)
    metrics = {name: np.full((m, len(stored)), np.nan) for name in SCALAR_METRICS}
    f1 = np.full((m, len(stored), k), np.nan, dtype=np.float32)
    status, error, diverged_epoch = [STATUS_OK] * m, [""] * m, [-1] * m
    # models whose updates apply (None: all). A model whose loss turns non-finite is found at the
    # end of the epoch, from the losses of every step: until then its row may compute on NaN,
    # which never reaches another row (no op mixes models) and is never stored (the epoch is
    # recorded as diverged), so what is stored equals freezing the model at that step, as the
    # reference does, without a check and a masked update at every step.
    active: torch.Tensor | None = None
    chunk = eval_chunk(net, device)

    def logits(x: torch.Tensor) -> torch.Tensor:
        return net.forward(params, x, shared=True)

    def record(epoch: int, seconds: float) -> None:
        live = [i for i in range(m) if status[i] == STATUS_OK]
        if epoch not in stored or not live:
            return
        row = stored.index(epoch)
        block = params.cpu().numpy()
        if sink is None:
            weights[live, row] = block[live]
        else:
            for i in live:
                sink(runs[i].model_id, row, block[i])
        scores = {name: score_split(logits, *split, k, chunk=chunk)
                  for name, split in splits.items() if split is not None}  # fmt: skip
        for name, values in scores.items():
            metrics[f"{name}_loss"][live, row] = values.loss.cpu().numpy()[live]
            metrics[f"{name}_acc"][live, row] = values.acc.cpu().numpy()[live]
        metrics["gap"][live, row] = (scores["train"].acc - scores["test"].acc).cpu().numpy()[live]
        metrics["seconds"][live, row] = seconds
        f1[live, row] = scores["test"].f1.float().cpu().numpy()[live]

    n, batch_size, step = images.shape[0], training["batch_size"], 0
    # inference mode: no autograd bookkeeping at all (the backward pass is written out), which
    # takes ~15% off a step of a small network; the kernels, and so the bits, are the same
    with torch.inference_mode():
        record(0, 0.0)
        for epoch in range(1, training["epochs"] + 1):
            started = time.perf_counter()
            first_step, losses = step, []
            order = torch.stack([epoch_order(run.seed, epoch, n) for run in runs]).to(device)
            for x, y in epoch_batches(order, images, labels, batch_size):
                if dropout is not None:
                    dropout.step = step
                tape: list = []
                outputs = net.forward(params, x, False, dropout, tape)
                loss, grad_logits = cross_entropy_step(outputs, y)
                losses.append(loss)
                net.backward(params, tape, grad_logits, grads)
                optimizer.step(grads, active)
                step += 1
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            seconds = (time.perf_counter() - started) / concurrent
            finite_weights = torch.isfinite(params).all(dim=1).tolist()
            died_at = first_failure(torch.stack(losses), first_step)
            for i, died in enumerate(died_at.tolist()):
                if status[i] != STATUS_OK:
                    continue
                if died >= 0:
                    error[i] = f"non-finite loss in epoch {epoch} (step {died})"
                elif not finite_weights[i]:
                    error[i] = f"non-finite weights after epoch {epoch}"
                else:
                    continue
                status[i], diverged_epoch[i] = STATUS_DIVERGED, epoch
            if STATUS_DIVERGED in status:
                # diverged rows are never recorded again: zero them to keep NaN out of kernels,
                # and mask their updates from now on
                active = torch.tensor([s == STATUS_OK for s in status], device=device)
                params.masked_fill_(~active.unsqueeze(1), 0.0)
                if STATUS_OK not in status:
                    break
            record(epoch, seconds)
            if progress is not None:
                progress(m)
    return [
        RunResult(
            model_id=run.model_id, run_key=run.key, weights=None if sink else weights[i],
            metrics={name: values[i] for name, values in metrics.items()}, f1=f1[i],
            status=status[i], error=error[i], diverged_epoch=diverged_epoch[i],
        )
        for i, run in enumerate(runs)
    ]  # fmt: skip


def epoch_batches(
    order: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Every step's batch of one epoch: images [M, B, *example] and labels [M, B], where model i
    sees ``order[i, start:start + B]``.

    Each call gathers the batches of many steps at once (as many as fit in BATCH_GATHER_VALUES),
    in step-major order so that each step's batch is one contiguous block equal to what a
    per-step ``index_select`` gives: a step of a small network then does no indexing work.
    """
    m, n = order.shape
    example = images.shape[1:]
    full = n // batch_size * batch_size
    steps = order[:, :full].view(m, -1, batch_size).transpose(0, 1)  # [S, M, B]
    per_step = m * batch_size * math.prod(example)
    for block in steps.split(max(1, BATCH_GATHER_VALUES // per_step)):
        xs = images.index_select(0, block.reshape(-1)).view(*block.shape, *example)
        yield from zip(xs, labels.take(block))
    if full < n:  # the last, shorter batch
        rest = order[:, full:]
        yield images.index_select(0, rest.reshape(-1)).view(m, -1, *example), labels.take(rest)


def first_failure(losses: torch.Tensor, first_step: int) -> torch.Tensor:
    """[M]: the step of each model's first non-finite loss in an epoch, or -1, from the epoch's
    losses [S, M] (step ``first_step`` first)."""
    failed = ~torch.isfinite(losses)
    first = failed.to(torch.uint8).argmax(dim=0)  # argmax gives the first of equal maxima
    return torch.where(failed.any(dim=0), first + first_step, -1)


def _once(sink: EpochSink, seen: set, model_id: int, row: int, values: np.ndarray) -> None:
    """Pass on each (model, row) once: a lone CNN run trains with a twin of the same id."""
    if (model_id, row) not in seen:
        seen.add((model_id, row))
        sink(model_id, row, values)


def make_dropout(runs: list[Run], device: torch.device) -> Dropout | None:
    """The group's dropout state, or None when no run uses dropout."""
    rates = [float(run.training["dropout"]) for run in runs]
    if not any(rate > 0 for rate in rates):
        return None
    seeds = torch.tensor([derive_seed(run.seed, "dropout") for run in runs])
    return Dropout(
        keys=dropout_keys(seeds).to(device),
        rates=torch.tensor(rates, dtype=torch.float32, device=device),
        scale=torch.tensor([1.0 - r for r in rates], dtype=torch.float32, device=device),
    )
