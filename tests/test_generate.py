"""End to end: spec -> trained zoo on disk, read back with h5py + pyarrow alone; resume; errors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from modelzoo.cli import main
from modelzoo.errors import StoreError
from modelzoo.run import generate
from modelzoo.spec import load_spec

pytestmark = pytest.mark.slow


def read_zoo(zoo_dir: Path) -> dict[int, np.ndarray]:
    """Weights by model id using h5py and json only, as a foreign reader would."""
    manifest = json.loads((zoo_dir / "zoo.json").read_text())
    weights = {}
    for shard in manifest["shards"]:
        with h5py.File(zoo_dir / shard["path"], "r") as h5:
            for row, model_id in enumerate(h5["model_ids"][:]):
                assert int(model_id) not in weights, "a model is stored twice"
                weights[int(model_id)] = h5["weights"][row]
    return weights


def cli(*args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "TQDM_DISABLE": "1", **(env or {})}
    done = subprocess.run([sys.executable, "-m", "modelzoo.cli", *args], capture_output=True,
                          text=True, env=full_env, timeout=300)  # fmt: skip
    if check:
        assert done.returncode == 0, done.stderr
    return done


def test_generated_zoo_is_readable_without_modelzoo(tiny_spec: Path, tmp_path: Path) -> None:
    report = generate(load_spec(tiny_spec), tmp_path / "store", executor="local")
    zoo = tmp_path / "store" / "tiny_tetris"
    assert report.zoo_dir == zoo and report.trained == 10
    manifest = json.loads((zoo / "zoo.json").read_text())
    assert manifest["format_version"] == 1
    assert manifest["epochs"] == [0, 1, 2, 3]
    assert [s["name"] for s in manifest["layout"]] == ["fc1.weight", "fc2.weight"]
    assert manifest["counts"] == {"planned": 10, "done": 10, "ok": 10, "diverged": 0, "failed": 0}
    weights = read_zoo(zoo)
    assert sorted(weights) == list(range(10))
    assert all(w.shape == (4, 100) and w.dtype == np.float32 for w in weights.values())
    models = pq.read_table(zoo / "models.parquet").to_pandas()
    metrics = pq.read_table(zoo / "metrics.parquet").to_pandas()
    assert list(models["model_id"]) == list(range(10))
    assert set(models["activation"]) == {"tanh", "relu"} and models["lr"].dtype == np.float64
    assert (models["status"] == "ok").all()
    assert len(metrics) == 10 * 4
    for column in ("train_loss", "train_acc", "test_loss", "test_acc", "gap", "seconds", "f1_3"):
        assert metrics[column].notna().all(), column
    assert np.allclose(metrics["gap"], metrics["train_acc"] - metrics["test_acc"])
    # weights change over training and differ between seeds
    w0 = weights[0]
    assert not np.array_equal(w0[0], w0[-1])
    assert not np.array_equal(weights[0][0], weights[1][0])


def test_same_spec_twice_gives_bit_identical_weights(tiny_spec: Path, tmp_path: Path) -> None:
    generate(load_spec(tiny_spec), tmp_path / "a", executor="local")
    generate(load_spec(tiny_spec), tmp_path / "b", executor="local", models_per_task=10)
    a, b = read_zoo(tmp_path / "a" / "tiny_tetris"), read_zoo(tmp_path / "b" / "tiny_tetris")
    assert sorted(a) == sorted(b)
    for model_id in a:
        assert np.array_equal(a[model_id], b[model_id]), model_id


def test_ray_with_different_worker_counts_gives_identical_zoos(
    tiny_spec: Path, tmp_path: Path
) -> None:
    cli("generate", str(tiny_spec), "--store", str(tmp_path / "one"), "--max-workers", "1")
    cli("generate", str(tiny_spec), "--store", str(tmp_path / "two"), "--max-workers", "2")
    generate(load_spec(tiny_spec), tmp_path / "local", executor="local")
    one, two = (
        read_zoo(tmp_path / "one" / "tiny_tetris"),
        read_zoo(tmp_path / "two" / "tiny_tetris"),
    )
    local = read_zoo(tmp_path / "local" / "tiny_tetris")
    for model_id in local:
        assert np.array_equal(one[model_id], two[model_id])
        assert np.array_equal(one[model_id], local[model_id])


@pytest.mark.parametrize("stage", ["mid-shard", "after-shard", "between-tables", "before-manifest"])
def test_killed_run_leaves_a_valid_store_and_resumes(
    tiny_spec: Path, tmp_path: Path, stage: str
) -> None:
    store = tmp_path / "store"
    args = ("generate", str(tiny_spec), "--store", str(store), "--executor", "local")
    killed = cli(*args, env={"MODELZOO_CRASH_AT": f"{stage}:2"}, check=False)
    assert killed.returncode == 137
    zoo = store / "tiny_tetris"
    manifest = json.loads((zoo / "zoo.json").read_text())  # still a valid zoo
    assert manifest["counts"]["done"] in (0, 3, 6)  # the commit point decides
    status = cli("status", str(zoo))
    assert "models stored" in status.stdout
    cli(*args)
    generate(load_spec(tiny_spec), tmp_path / "clean", executor="local")
    resumed, clean = read_zoo(zoo), read_zoo(tmp_path / "clean" / "tiny_tetris")
    assert sorted(resumed) == sorted(clean) == list(range(10))
    for model_id in clean:
        assert np.array_equal(resumed[model_id], clean[model_id])
    assert not list(zoo.rglob("*.tmp"))
    models = pq.read_table(zoo / "models.parquet").to_pandas()
    assert sorted(models["model_id"]) == list(range(10))


def test_kill_9_of_the_driver_then_resume(tiny_spec: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    spec_text = tiny_spec.read_text().replace("epochs: 3", "epochs: 40").replace("models_per_task: 3",
                                                                                  "models_per_task: 1")  # fmt: skip
    spec = tmp_path / "slow.yaml"
    spec.write_text(spec_text)
    args = [sys.executable, "-m", "modelzoo.cli", "generate", str(spec), "--store", str(store),
            "--executor", "local", "--quiet"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = store / "tiny_tetris" / "shards"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(shards.glob("*.h5"))) < 2:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before = json.loads((store / "tiny_tetris" / "zoo.json").read_text())["counts"]["done"]
    assert 0 < done_before < 10
    cli("generate", str(spec), "--store", str(store), "--executor", "local")
    generate(load_spec(spec), tmp_path / "clean", executor="local")
    resumed, clean = read_zoo(store / "tiny_tetris"), read_zoo(tmp_path / "clean" / "tiny_tetris")
    assert sorted(resumed) == list(range(10))
    for model_id in clean:
        assert np.array_equal(resumed[model_id], clean[model_id])


def test_limit_then_full_run_equals_clean_run(tiny_spec: Path, tmp_path: Path) -> None:
    generate(load_spec(tiny_spec), tmp_path / "s", executor="local", limit=4)
    assert sorted(read_zoo(tmp_path / "s" / "tiny_tetris")) == [0, 1, 2, 3]
    report = generate(load_spec(tiny_spec), tmp_path / "s", executor="local")
    assert report.skipped == 4 and report.trained == 6
    generate(load_spec(tiny_spec), tmp_path / "clean", executor="local")
    resumed, clean = (
        read_zoo(tmp_path / "s" / "tiny_tetris"),
        read_zoo(tmp_path / "clean" / "tiny_tetris"),
    )
    for model_id in clean:
        np.testing.assert_allclose(resumed[model_id], clean[model_id], atol=1e-6)


def test_switching_engines_on_a_zoo_is_refused(tiny_spec: Path, tmp_path: Path) -> None:
    generate(load_spec(tiny_spec), tmp_path, executor="local", engine="reference", limit=3)
    with pytest.raises(StoreError, match="different spec"):
        generate(load_spec(tiny_spec), tmp_path, executor="local")
    generate(load_spec(tiny_spec), tmp_path, executor="local", engine="reference")
    manifest = json.loads((tmp_path / "tiny_tetris" / "zoo.json").read_text())
    assert manifest["spec"]["execution"]["engine"] == "reference"


def test_changed_spec_is_refused_unless_restart(tiny_spec: Path, tmp_path: Path) -> None:
    generate(load_spec(tiny_spec), tmp_path, executor="local", limit=2)
    changed = load_spec(tiny_spec, ["training.lr=0.5"])
    with pytest.raises(StoreError, match="different spec"):
        generate(changed, tmp_path, executor="local", limit=2)
    result = CliRunner().invoke(main, ["generate", str(tiny_spec), "--store", str(tmp_path),
                                       "--set", "training.lr=0.5", "--executor", "local"])  # fmt: skip
    assert result.exit_code == 2 and "--restart" in result.output
    generate(changed, tmp_path, executor="local", limit=2, restart=True)
    manifest = json.loads((tmp_path / "tiny_tetris" / "zoo.json").read_text())
    assert manifest["spec"]["training"]["lr"] == 0.5


def test_diverged_models_are_recorded_not_dropped(tiny_spec: Path, tmp_path: Path) -> None:
    spec = load_spec(tiny_spec, ["training.optimizer=sgd", "grid.training.lr=[0.01, 1.0e+30]",
                                "grid.training.activation=[relu]"])  # fmt: skip
    generate(spec, tmp_path, executor="local")
    models = pq.read_table(tmp_path / "tiny_tetris" / "models.parquet").to_pandas()
    assert len(models) == 10
    bad = models[models["lr"] == 1e30]
    assert (bad["status"] == "diverged").all()
    assert bad["error"].str.contains("non-finite").all()
    assert (models[models["lr"] == 0.01]["status"] == "ok").all()


def test_dry_run_json_reports_and_writes_nothing(tiny_spec: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["generate", str(tiny_spec), "--dry-run", "--json",
                                       "--store", str(tmp_path / "s")])  # fmt: skip
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["models"] == 10 and summary["epochs"] == 3
    assert summary["states"] == 40 and summary["parameters"] == 100
    assert not (tmp_path / "s").exists()
    mnist = CliRunner().invoke(
        main, ["generate", "specs/mnist_hyp_5_rand.yaml", "--dry-run", "--json"]
    )
    assert json.loads(mnist.output)["models"] == 1280
    assert json.loads(mnist.output)["parameters"] == 2464


BAD_INPUT = [
    (["generate", "no_such_spec"], "no such file, and no bundled spec"),
    (["generate", "tetris_seed", "--set", "training.epochs=-1"], "training.epochs"),
    (["generate", "tetris_seed", "--set", "training.activation=tahn"], "unknown value 'tahn'"),
    (["generate", "tetris_seed", "--set", "nonsense"], "expected KEY=VALUE"),
    (["generate", "tetris_seed", "--limit", "0"], "--limit"),
    (["status", "nowhere"], "no such zoo folder"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUT)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        main, [*args, "--store", str(tmp_path / "s")] if args[0] == "generate" else args
    )
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "s").exists()


def test_store_that_is_a_file_is_refused(tiny_spec: Path, tmp_path: Path) -> None:
    store = tmp_path / "file"
    store.write_text("not a folder")
    done = cli(
        "generate", str(tiny_spec), "--store", str(store), "--executor", "local", check=False
    )
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0 and "is a file" in done.stderr
    assert store.read_text() == "not a folder"


def test_malicious_yaml_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    spec = tmp_path / "evil.yaml"
    spec.write_text(f"!!python/object/apply:os.system ['touch {marker}']\n")
    done = cli("generate", str(spec), "--store", str(tmp_path / "s"), check=False)
    assert done.returncode == 2 and "YAML tag not allowed" in done.stderr
    assert not marker.exists() and not (tmp_path / "s").exists()


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_missing_dataset_is_one_line_and_writes_nothing(tmp_path: Path, executor: str) -> None:
    done = cli("generate", "mnist_seed", "--limit", "2", "--store", str(tmp_path / "s"),
               "--data-dir", str(tmp_path / "data"), "--set", "dataset.download=false",
               "--executor", executor, "--quiet", check=False)  # fmt: skip
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: MNIST not found under"), done.stderr
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("stage", ["after-shard", "between-tables", "before-manifest"])
def test_a_killed_run_is_readable_and_verifiable_before_resume(
    tiny_spec: Path, tmp_path: Path, stage: str
) -> None:
    from modelzoo import open_zoo
    from modelzoo.store.verify import verify_zoo

    store = tmp_path / "store"
    args = ("generate", str(tiny_spec), "--store", str(store), "--executor", "local")
    assert cli(*args, env={"MODELZOO_CRASH_AT": f"{stage}:3"}, check=False).returncode == 137
    zoo_dir = store / "tiny_tetris"
    committed = json.loads((zoo_dir / "zoo.json").read_text())["counts"]["done"]
    zoo = open_zoo(zoo_dir)
    assert len(zoo) == committed == len(read_zoo(zoo_dir))
    assert len(zoo.metrics) == committed * len(zoo.epochs)
    report = verify_zoo(zoo_dir)
    assert report.ok, report.problems
