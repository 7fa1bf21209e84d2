"""A newcomer's first hour: live progress, small runs in-process, grid previews, the dry run's
estimate, compact info, image splits as torch datasets, specs printed as written."""

from __future__ import annotations

import collections
import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from modelzoo import estimate as estimate_module
from modelzoo import open_zoo
from modelzoo.cli import main
from modelzoo.errors import ModelZooError
from modelzoo.plan import plan
from modelzoo.run import Progress, generate
from modelzoo.spec import expand, load_spec, sample_runs, validate, varying_columns
from modelzoo.spec.expansion import balanced_order

# slow enough (4 models x 24 epochs x 600 steps, ~2 s) that the driver, which polls Ray workers
# every 0.5 s, sees the task's progress before it ends
SLOW_TETRIS = """\
name: slow_tetris
dataset:
  name: tetris
  options: {train_size: 3000, test_size: 40}
architecture:
  name: tetris_mlp
training:
  epochs: 24
  batch_size: 5
  lr: 1.0e-3
seeds:
  range: [1, 4]
execution:
  models_per_task: 4
"""


def _spec(tmp_path: Path, text: str = SLOW_TETRIS, name: str = "slow.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --------------------------------------------------------------------------- progress


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_progress_is_reported_per_epoch_before_the_task_finishes(
    tmp_path: Path, executor: str
) -> None:
    """One task of 4 models x 24 epochs: the bar moves long before the task is stored, from a
    Ray worker too (through the progress actor the driver polls)."""
    seen: list[tuple[int, int, int]] = []

    def progress(state: Progress) -> None:
        seen.append((state.model_epochs, state.models, state.model_epochs_total))

    report = generate(load_spec(_spec(tmp_path)), tmp_path / "store", executor=executor,
                      progress=progress)  # fmt: skip
    assert report.trained == 4 and report.executor == executor
    total = 4 * 24
    assert all(t == total for _, _, t in seen)
    during = [done for done, models, _ in seen if models == 0 and 0 < done < total]
    assert during, f"no progress before the task finished: {seen}"
    assert seen[-1][:2] == (total, 4)
    assert [done for done, _, _ in seen] == sorted(done for done, _, _ in seen)  # never backwards


def test_progress_of_several_ray_tasks_ends_at_the_total(tmp_path: Path) -> None:
    """Finished tasks stay on Ray's progress board: the driver must not count them again when
    later polls report them (the bar once overshot to 150 % on the README's tetris_seed)."""
    spec = SLOW_TETRIS.replace("models_per_task: 4", "models_per_task: 1")
    assert spec != SLOW_TETRIS
    seen: list[tuple[int, int]] = []
    generate(load_spec(_spec(tmp_path, spec)), tmp_path / "store", executor="ray",
             progress=lambda s: seen.append((s.model_epochs, s.model_epochs_total)))  # fmt: skip
    total = 4 * 24
    assert all(done <= total for done, _ in seen), seen
    assert seen[-1] == (total, total)
    assert [done for done, _ in seen] == sorted(done for done, _ in seen)


def test_progress_counts_skip_what_a_resume_does_not_train(tiny_spec: Path, tmp_path: Path) -> None:
    generate(load_spec(tiny_spec), tmp_path, executor="local", limit=3)
    seen: list[Progress] = []
    report = generate(load_spec(tiny_spec), tmp_path, executor="local",
                      progress=lambda s: seen.append(Progress(**vars(s))))  # fmt: skip
    assert report.trained == 7
    assert seen[-1].models == seen[-1].models_total == 7
    assert seen[-1].model_epochs == seen[-1].model_epochs_total


def test_a_plan_of_one_task_runs_in_process_and_several_go_to_ray(
    tiny_spec: Path, tmp_path: Path, monkeypatch
) -> None:
    import modelzoo.run as run

    started = []

    class FakeRay(run.InProcessExecutor):
        def __init__(self, *args, **kwargs) -> None:
            started.append(args)

    monkeypatch.setattr(run, "RayExecutor", FakeRay)
    single = ["execution.models_per_task=10", "grid.training.activation=[tanh]"]
    one = generate(load_spec(tiny_spec, single), tmp_path / "a")
    assert one.executor == "local" and started == []
    several = generate(load_spec(tiny_spec), tmp_path / "b")  # models_per_task 3: 4 tasks
    assert several.executor == "ray" and len(started) == 1


# --------------------------------------------------------------------------- --sample


def test_sample_spreads_over_every_factor_and_is_deterministic() -> None:
    spec = load_spec("mnist_hyp_5_rand")
    runs = expand(spec)
    factors, _ = varying_columns(runs)
    picked = sample_runs(runs, 40)
    assert [r.model_id for r in picked] == [r.model_id for r in sample_runs(runs, 40)]
    assert len({r.model_id for r in picked}) == 40
    for name, values in factors.items():
        if name == "seed":
            continue
        counts = collections.Counter(r.columns()[name] for r in picked)
        assert set(counts) == set(values), name  # every value appears
        assert max(counts.values()) - min(counts.values()) <= 1, (name, counts)
    first = expand(spec)[:40]  # what --limit 40 gives: one corner of the grid
    assert len({r.columns()["init"] for r in first}) == 1


@settings(max_examples=80, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=1, max_size=3),
    seeds=st.integers(1, 3),
    count=st.integers(1, 200),
)
def test_sample_marginals_are_balanced_on_any_grid(
    sizes: list[int], seeds: int, count: int
) -> None:
    keys = ["lr", "weight_decay", "dropout"][: len(sizes)]
    grid = {f"training.{k}": [0.1 * (i + 1) for i in range(n)] for k, n in zip(keys, sizes)}
    raw = {"name": "g", "dataset": {"name": "tetris"}, "architecture": {"name": "tetris_mlp"},
           "training": {"epochs": 1}, "grid": grid, "seeds": {"range": [1, seeds]}}  # fmt: skip
    runs = expand(validate(raw))
    picked = sample_runs(runs, count)
    assert len(picked) == min(count, len(runs))
    assert [r.model_id for r in picked] == sorted(r.model_id for r in picked)
    for key in keys:
        counts = collections.Counter(r.columns()[key] for r in picked)
        full = [counts.get(v, 0) for v in grid[f"training.{key}"]]
        assert max(full) - min(full) <= 1, (key, full)


@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_balanced_order_visits_every_combination_with_balanced_prefixes(sizes: list[int]) -> None:
    order = balanced_order(sizes)
    assert sorted(order) == sorted(itertools.product(*(range(n) for n in sizes)))
    for j, n in enumerate(sizes):  # every aligned block of n holds each value once
        for start in range(0, len(order) - n + 1, n):
            assert sorted(combo[j] for combo in order[start : start + n]) == list(range(n))


def test_dry_run_states_the_selection_and_the_whole_spec(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["generate", "mnist_hyp_5_rand", "--sample", "40",
                                       "--dry-run", "--json", "--no-estimate"])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["selection"] == "40 spread over the grid (--sample)"
    assert (summary["models"], summary["models_in_spec"]) == (40, 1280)
    assert (summary["states"], summary["states_in_spec"]) == (40 * 26, 1280 * 26)
    assert summary["tasks"] <= summary["tasks_in_spec"]
    grid = {k: v for k, v in summary["factors"].items() if k != "seed"}
    assert grid == {k: summary["factors_covered"][k] for k in grid}  # every value is covered
    assert summary["factors"]["init"] == 4 and "momentum" in summary["settings"]
    text = CliRunner().invoke(main, ["generate", "mnist_hyp_5_rand", "--limit", "40",
                                     "--dry-run", "--no-estimate"]).output  # fmt: skip
    assert "first 40 (--limit)" in text and "40 of 1,280 in the spec" in text
    assert "1 of 4 values in the selection" in text  # --limit covers one init only
    both = CliRunner().invoke(main, ["generate", "tetris_seed", "--limit", "2", "--sample", "2",
                                     "--dry-run"])  # fmt: skip
    assert both.exit_code == 2 and "choose one" in both.output


# --------------------------------------------------------------------------- estimate


def test_estimate_extrapolates_the_timed_slice(tiny_spec: Path, monkeypatch) -> None:
    """The arithmetic, checked with a slice of known cost: steps x step cost + evaluated
    examples x evaluation cost, summed over tasks, divided by the tasks that run at once."""
    monkeypatch.setattr(estimate_module, "_time_slice", lambda task, runs, cut: (0.002, 1e-5))
    monkeypatch.setattr(estimate_module.os, "cpu_count", lambda: 2)
    the_plan = plan(load_spec(tiny_spec))  # 10 runs in tasks of 3: 3, 3, 3, 1 (two shapes)
    got = estimate_module.estimate_plan(the_plan)
    steps = 8 * 3  # 64 examples / batch 8, 3 epochs
    examples = 4 * (64 + 32)  # 4 stored epochs x (train + test)
    per_task = [len(t.runs) / len(the_plan.tasks[0].runs) * (steps * 0.002 + examples * 1e-5)
                for t in the_plan.tasks]  # fmt: skip
    assert got.parallel_tasks == 2
    assert got.seconds == pytest.approx(sum(per_task) / 2)
    assert got.steps == estimate_module.SLICE_STEPS and not got.synthetic
    assert f"estimate: {estimate_module.SLICE_STEPS} steps of 3 models" in got.describe()


def test_dry_run_prints_a_labelled_estimate(tiny_spec: Path) -> None:
    result = CliRunner().invoke(main, ["generate", str(tiny_spec), "--dry-run"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if line.startswith("time"))
    assert "on this machine (estimate:" in line and "ms/step" in line
    data = json.loads(CliRunner().invoke(main, ["generate", str(tiny_spec), "--dry-run",
                                                "--json"]).output)  # fmt: skip
    assert data["estimate"]["seconds"] > 0 and data["estimate"]["timed_models"] == 3
    # tiny_spec has several tasks: the plan starts a local Ray, which the estimate includes
    assert data["estimate"]["ray_start_seconds"] > 0 and "starting a local Ray" in line
    local = json.loads(CliRunner().invoke(main, ["generate", str(tiny_spec), "--dry-run", "--json",
                                                 "--executor", "local"]).output)  # fmt: skip
    assert local["estimate"]["ray_start_seconds"] == 0
    one_task = json.loads(CliRunner().invoke(main, ["generate", str(tiny_spec), "--dry-run",
                                                    "--json", "--limit", "2"]).output)  # fmt: skip
    assert one_task["estimate"]["ray_start_seconds"] == 0


def test_dry_run_without_the_data_times_random_data_and_downloads_nothing(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["generate", "mnist_seed", "--dry-run", "--data-dir",
                                       str(tmp_path)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "on random data of the dataset's shape: its files are absent" in result.output
    assert list(tmp_path.iterdir()) == []  # nothing fetched, nothing written


# --------------------------------------------------------------------------- grouping


def test_grouping_is_recorded_and_a_resume_keeps_it(tiny_spec: Path, tmp_path: Path) -> None:
    generate(load_spec(tiny_spec), tmp_path, executor="local", limit=3)
    manifest = json.loads((tmp_path / "tiny_tetris" / "zoo.json").read_text())
    assert manifest["grouping"]["device_kind"] == "cpu"
    assert set(manifest["grouping"]["sizes"].values()) == {3}  # the spec's models_per_task
    with pytest.raises(ModelZooError, match="keeps that grouping"):
        generate(load_spec(tiny_spec), tmp_path, executor="local", models_per_task=5)
    recorded = dict(manifest["grouping"], device_kind="cuda")
    with pytest.raises(ModelZooError, match="generated on 'cuda'"):
        plan(load_spec(tiny_spec), recorded=recorded)
    report = generate(load_spec(tiny_spec), tmp_path, executor="local", models_per_task=3)
    assert report.trained == 7


def test_group_sizes_do_not_depend_on_free_memory(monkeypatch) -> None:
    """A pure function of spec, architecture and device kind (and, on CPU, the core count)."""
    import os

    spec = load_spec("mnist_hyp_5_rand")
    first = plan(spec, device="cpu").grouping
    monkeypatch.setattr(os, "sysconf", lambda name: 1)  # "no free memory at all"
    assert plan(spec, device="cpu").grouping == first
    gpu = plan(spec, device="cuda", device_here=False).grouping
    assert gpu["device_kind"] == "cuda" and gpu == plan(spec, device="cuda:3",
                                                         device_here=False).grouping  # fmt: skip


# --------------------------------------------------------------------------- reading


def test_zoo_data_is_a_torch_dataset(tiny_spec: Path, tmp_path: Path) -> None:
    zoo = open_zoo(generate(load_spec(tiny_spec), tmp_path, executor="local").zoo_dir)
    test = zoo.data("test")
    assert isinstance(test, torch.utils.data.Dataset) and len(test) == 32
    image, label = test[5]
    assert torch.equal(image, test.images[5]) and int(label) == int(test.labels[5])
    batches = list(torch.utils.data.DataLoader(test, batch_size=10))
    assert [len(b[1]) for b in batches] == [10, 10, 10, 2]
    assert torch.equal(torch.cat([b[0] for b in batches]), test.images)


def test_info_is_compact_and_separates_factors_from_settings(tmp_path: Path) -> None:
    spec = load_spec("tetris_seed", ["training.epochs=12", "seeds.range=[1,3]"])
    zoo_dir = generate(spec, tmp_path, executor="local").zoo_dir
    text = CliRunner().invoke(main, ["info", str(zoo_dir)]).output
    rows = [line.split()[0] for line in text.splitlines() if line.startswith("  ") and
            line.split()[0].isdigit() and "values" not in line]  # fmt: skip
    assert rows == ["0", "2", "5", "7", "10", "12"]  # first, four between, last
    assert "(7 more epochs: --epochs all)" in text
    assert "factors        (what varies)" in text and "seed" in text
    settings_line = next(line for line in text.splitlines() if line.startswith("settings"))
    assert "lr 3e-05" in settings_line and "optimizer adam" in settings_line
    every = CliRunner().invoke(main, ["info", str(zoo_dir), "--epochs", "all"]).output
    assert "more epochs" not in every and "     11  " in every
    zoo = open_zoo(zoo_dir)
    assert list(zoo.factors()) == ["seed"] and zoo.settings()["activation"] == "tanh"


def test_spec_show_prints_text_as_written() -> None:
    result = CliRunner().invoke(main, ["spec", "show", "tetris_seed"])
    assert "Schürholt" in result.output and "\\xFC" not in result.output


def test_sample_zoo_is_generated_and_resumes_to_the_full_spec(
    tiny_spec: Path, tmp_path: Path
) -> None:
    report = generate(load_spec(tiny_spec), tmp_path, executor="local", sample=4)
    zoo = open_zoo(report.zoo_dir)
    assert len(zoo) == 4 and set(zoo.models["activation"]) == {"tanh", "relu"}
    rest = generate(load_spec(tiny_spec), tmp_path, executor="local")
    assert (rest.trained, rest.skipped) == (6, 4)
    assert np.array_equal(open_zoo(report.zoo_dir).model_ids, np.arange(10))
