"""`modelzoo spec ...` and failure isolation inside a task."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from modelzoo.cli import main
from modelzoo.run import generate
from modelzoo.spec import load_spec
from modelzoo.train import reference


def test_spec_schema_is_json_schema() -> None:
    result = CliRunner().invoke(main, ["spec", "schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "training" in schema["properties"] and "grid" in schema["properties"]


def test_spec_list_names_every_bundled_spec() -> None:
    result = CliRunner().invoke(main, ["spec", "list"])
    assert result.exit_code == 0
    assert "mnist_hyp_5_rand" in result.output and "1280 models" in result.output


def test_spec_show_prints_the_resolved_spec(tiny_spec: Path) -> None:
    result = CliRunner().invoke(main, ["spec", "show", str(tiny_spec), "--set", "training.lr=0.5"])
    assert result.exit_code == 0
    shown = yaml.safe_load(result.output)
    assert shown["training"]["lr"] == 0.5 and shown["training"]["momentum"] == 0.0


def test_help_teaches() -> None:
    result = CliRunner().invoke(main, ["generate", "--help"])
    assert result.exit_code == 0
    assert "Examples" in result.output and "--dry-run" in result.output


def test_a_crashing_model_is_recorded_as_failed(
    tiny_spec: Path, tmp_path: Path, monkeypatch
) -> None:
    original = reference.train_reference

    def flaky(run, data, device="cpu", *args, **kwargs):
        if run.seed == 3:
            raise RuntimeError("simulated CUDA error")
        return original(run, data, device, *args, **kwargs)

    monkeypatch.setattr(reference, "train_reference", flaky)
    generate(load_spec(tiny_spec), tmp_path, executor="local", engine="reference")
    models = pq.read_table(tmp_path / "tiny_tetris" / "models.parquet").to_pandas()
    assert len(models) == 10
    failed = models[models["seed"] == 3]
    assert (failed["status"] == "failed").all()
    assert failed["error"].str.contains("simulated CUDA error").all()
    assert (models[models["seed"] != 3]["status"] == "ok").all()


def test_the_command_line_starts_without_heavy_imports() -> None:
    """`modelzoo --help` (and the start of every command) imports click and modelzoo only:
    torch, pandas and the science layer's libraries load inside the commands that use them."""
    import subprocess
    import sys

    heavy = ("torch", "pandas", "pyarrow", "h5py", "sklearn", "scipy", "matplotlib", "ray")
    code = f"import sys, modelzoo.cli; print([m for m in {heavy!r} if m in sys.modules])"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout.strip()  # fmt: skip
    assert loaded == "[]"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--bogus"], "modelzoo: No such option '--bogus'"),
        (["nosuch"], "modelzoo: No such command 'nosuch'"),
        (["generate"], "modelzoo generate: Missing argument 'SPEC'"),
        (["train-ae", "zoo", "--epochs", "abc"], "'abc' is not a valid integer"),
        (["sample", "run", "--n", "x"], "modelzoo sample: Invalid value for '--n'"),
        (["probe", "zoo", "--target", "a"], "Did you mean '--targets'?"),
        (["spec", "show"], "modelzoo spec show: Missing argument"),
        (["spec", "show", "--set"], "modelzoo spec show: Option '--set' requires"),
        (["sample", "--method"], "modelzoo sample: Option '--method' requires an argument"),
    ],
)
def test_usage_errors_are_one_line_and_exit_2(args: list[str], said: str) -> None:
    result = CliRunner().invoke(main, args, prog_name="modelzoo")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0], result.stderr
    assert "--help" in lines[0] and not result.stdout


def test_a_bare_group_still_shows_its_help() -> None:
    result = CliRunner().invoke(main, ["spec"], prog_name="modelzoo")
    assert "Usage: modelzoo spec" in result.output and "error" not in result.output
