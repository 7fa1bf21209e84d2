"""Training throughput: the reference trainer as the zoo generators run it vs. the vectorised engine.

Both are measured in the same run, on the same data, runs and epochs, in model-epochs per second
(one model trained for one epoch, evaluation included):

* baseline: ``train_reference``, one model per worker process, one worker per core
  (``ProcessPoolExecutor(os.cpu_count())``, each worker ``torch.set_num_threads(1)``), the pool
  started and the data loaded before the clock starts;
* engine: ``train_vectorized`` on all models as one group, in this process with all cores.

Cases: the tetris MLP (4x4 inputs, 1000 training examples, batch 10, Adam lr 3e-5, tanh, uniform
init) and CNN-small on 28x28 inputs (batch 10). Data is random, shaped like the real sets; pass
``--data-dir`` to train CNN-small on real MNIST through modelzoo.data instead.

    python benchmarks/train_throughput.py              # both cases, a few minutes on 2 cores
    python benchmarks/train_throughput.py --quick      # smoke run, seconds
    python benchmarks/train_throughput.py --case cnn_small --models 64 --epochs 1
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from multiprocessing import get_context
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from modelzoo.architectures import plan_architecture
from modelzoo.data import ImageData, TrainingData
from modelzoo.devices import device_kind
from modelzoo.plan import suggest_group_size
from modelzoo.spec import Run
from modelzoo.train.reference import train_reference
from modelzoo.train.vectorized import train_vectorized


@dataclass(frozen=True)
class Case:
    architecture: str
    input_shape: tuple[int, int, int]
    classes: int
    examples: int  # training examples
    test_examples: int
    models: int  # models trained by the engine
    baseline_models: int  # models trained by the baseline (its throughput does not depend on it)
    epochs: int
    lr: float
    batch_size: int = 10


CASES = {
    "tetris_mlp": Case("tetris_mlp", (1, 4, 4), 4, 1000, 250, 1024, 32, 2, 3e-5),
    "cnn_small": Case("cnn_small", (1, 28, 28), 10, 4000, 1000, 64, 8, 1, 1e-3),
}
QUICK = {
    "tetris_mlp": dict(examples=200, test_examples=50, models=64, baseline_models=4, epochs=1),
    "cnn_small": dict(examples=200, test_examples=50, models=8, baseline_models=2, epochs=1),
}


def make_runs(case: Case, count: int) -> list[Run]:
    training = {
        "epochs": case.epochs, "batch_size": case.batch_size, "optimizer": "adam", "lr": case.lr,
        "weight_decay": 0.0, "momentum": 0.0, "dropout": 0.0, "activation": "tanh",
        "init": "uniform", "loss": "cross_entropy",
    }  # fmt: skip
    return [
        Run(
            model_id=i,
            seed=i + 1,
            dataset={"name": "benchmark"},
            architecture={"name": case.architecture},
            training=training,
            stored_epochs=tuple(range(case.epochs + 1)),
        )
        for i in range(count)
    ]


def random_data(case: Case) -> TrainingData:
    generator = torch.Generator().manual_seed(0)
    classes = tuple(str(i) for i in range(case.classes))

    def split(n: int) -> ImageData:
        images = torch.rand(n, *case.input_shape, generator=generator)
        return ImageData(images, torch.randint(0, case.classes, (n,), generator=generator), classes)

    return TrainingData(split(case.examples), None, split(case.test_examples))


def mnist_data(case: Case, data_dir: str) -> TrainingData:
    from modelzoo.data import DataConfig, load_training_data

    data = load_training_data(DataConfig(name="mnist", data_dir=data_dir, download=False))

    def head(split: ImageData, n: int) -> ImageData:
        return ImageData(
            split.images[:n].contiguous(), split.labels[:n].contiguous(), split.classes
        )

    return TrainingData(head(data.train, case.examples), None, head(data.test, case.test_examples))


# --------------------------------------------------------------------------- baseline workers

_DATA: TrainingData | None = None


def _start_worker(data: TrainingData, warm_up: Run) -> None:
    """Keep the data and pay torch's one-time costs (imports, kernel set-up) before the clock."""
    global _DATA
    torch.set_num_threads(1)
    _DATA = data
    train_reference(warm_up, small(data))


def _ready(_: int) -> int:
    return os.getpid()


def _train_reference(run: Run) -> str:
    return train_reference(run, _DATA).status


def small(data: TrainingData, n: int = 20) -> TrainingData:
    def head(split: ImageData) -> ImageData:
        return ImageData(split.images[:n], split.labels[:n], split.classes)

    return TrainingData(head(data.train), None, head(data.test))


def baseline(case: Case, data: TrainingData, workers: int) -> float:
    runs = make_runs(case, case.baseline_models)
    warm_up = make_runs(replace(case, epochs=1), 1)[0]
    context = get_context("spawn")
    with ProcessPoolExecutor(
        workers, context, initializer=_start_worker, initargs=(data, warm_up)
    ) as pool:
        list(pool.map(_ready, range(workers * 4)))  # start every worker before the clock
        started = time.perf_counter()
        statuses = list(pool.map(_train_reference, runs))
        elapsed = time.perf_counter() - started
    assert all(s == "ok" for s in statuses), statuses
    return len(runs) * case.epochs / elapsed


def engine(case: Case, data: TrainingData, device: str) -> float:
    runs = make_runs(case, case.models)
    train_vectorized(make_runs(replace(case, epochs=1), 2), small(data), device)  # warm-up
    started = time.perf_counter()
    results = train_vectorized(runs, data, device)
    elapsed = time.perf_counter() - started
    assert all(r.status == "ok" for r in results), [r.error for r in results if r.error]
    return len(runs) * case.epochs / elapsed


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=[*CASES, "all"], default="all")
    parser.add_argument("--models", type=int, help="models trained by the engine (one group)")
    parser.add_argument("--baseline-models", type=int, help="models trained by the baseline")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--examples", type=int, help="training examples")
    parser.add_argument("--test-examples", type=int)
    parser.add_argument("--device", default="cpu", help="engine device (the baseline runs on CPU)")
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="engine CPU threads")
    parser.add_argument("--workers", type=int, default=os.cpu_count(), help="baseline processes")
    parser.add_argument("--repeat", type=int, default=1, help="repeat and report the median")
    parser.add_argument("--data-dir", help="train CNN-small on real MNIST from this data folder")
    parser.add_argument("--quick", action="store_true", help="tiny smoke run")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    print(f"# {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}; engine on "
          f"{args.device} with {args.threads} threads, baseline {args.workers} processes x 1 thread")  # fmt: skip
    print(f"{'case':<11} {'models':>6} {'baseline':>9} {'engine':>9} {'ratio':>7}   "
          "(model-epochs/s; baseline models, engine models, group size suggested)")  # fmt: skip
    for name in CASES if args.case == "all" else [args.case]:
        case = replace(CASES[name], **(QUICK[name] if args.quick else {}))
        overrides = {"models": args.models, "baseline_models": args.baseline_models,
                     "epochs": args.epochs, "examples": args.examples,
                     "test_examples": args.test_examples}  # fmt: skip
        case = replace(case, **{k: v for k, v in overrides.items() if v is not None})
        if args.data_dir and name == "cnn_small":
            data = mnist_data(case, args.data_dir)
        else:
            data = random_data(case)
        ratios, rates = [], []
        for repetition in range(args.repeat):
            base = baseline(case, data, args.workers)
            fast = engine(case, data, args.device)
            ratios.append(fast / base)
            rates.append((base, fast))
            if args.repeat > 1:
                print(f"{'':<11} {'':>6} {base:>9.1f} {fast:>9.1f} {fast / base:>6.1f}x   "
                      f"(run {repetition + 1} of {args.repeat})", flush=True)  # fmt: skip
        base, fast = rates[ratios.index(statistics.median_low(ratios))]
        arch = plan_architecture(case.architecture, case.input_shape, case.classes)
        suggested = suggest_group_size(arch, case.batch_size, device_kind(args.device),
                                       torch.get_num_threads())  # fmt: skip
        print(f"{name:<11} {case.models:>6} {base:>9.1f} {fast:>9.1f} {fast / base:>6.1f}x   "
              f"({case.baseline_models}, {case.models}, {suggested}; {case.examples} examples, "
              f"{case.epochs} epochs)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
