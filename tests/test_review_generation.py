"""Review of `modelzoo generate` on inputs the first tests did not cover: every bad input gets one
`error:` line naming the file and key, exit 2, no traceback and nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from modelzoo.cli import main
from modelzoo.errors import SpecError
from modelzoo.spec import expand, load_spec

TINY = """\
name: review
dataset:
  name: tetris
  options: {train_size: 32, test_size: 16}
architecture:
  name: tetris_mlp
training:
  epochs: 1
  batch_size: 8
seeds:
  range: [1, 2]
"""


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "review.yaml"
    path.write_text(TINY)
    return path


def refused(args: list[str], store: Path, *needles: str) -> str:
    """Run the CLI and check the invariant for bad input; returns the error line."""
    result = CliRunner().invoke(main, [*args, "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert not store.exists()
    return lines[0]


def test_unhashable_yaml_key_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "complex_key.yaml"
    path.write_text(TINY + "? [1, 2]\n: 3\n")
    with pytest.raises(SpecError, match="complex_key.yaml: cannot read: line 12: a mapping key must be a plain value, got list"):
        load_spec(path)
    refused(["generate", str(path), "--dry-run"], tmp_path / "s", "complex_key.yaml")


def test_grid_key_given_twice_in_two_spellings_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "twice.yaml"
    path.write_text(TINY + "grid:\n  lr: [0.1, 0.2]\n  training.lr: [0.3]\n")
    with pytest.raises(SpecError, match=r"twice.yaml: grid.training.lr: .*lr"):
        load_spec(path)


def test_set_grid_key_replaces_the_shorthand_spelling(tmp_path: Path) -> None:
    path = tmp_path / "short.yaml"
    path.write_text(TINY + "grid:\n  lr: [0.1, 0.2]\n")
    spec = load_spec(path, ["grid.training.lr=[0.3]"])
    assert spec.resolved["grid"] == {"training.lr": [0.3]}
    assert [r.training["lr"] for r in expand(spec)] == [0.3, 0.3]
    spec = load_spec(path, ["grid.lr=[0.5]"])
    assert spec.resolved["grid"] == {"training.lr": [0.5]}


@pytest.mark.parametrize("name", ["a/b", "..", ".", "/tmp/elsewhere", "x\\y", " spaced", "-x"])
def test_zoo_name_must_be_a_plain_folder_name(spec_file: Path, tmp_path: Path, name: str) -> None:
    with pytest.raises(SpecError, match="review.yaml: name: "):
        load_spec(spec_file, [f"name={name!r}"])


@pytest.mark.parametrize("device", ["foo", "cpu:abc", "meta"])
def test_misspelt_device_is_one_line(spec_file: Path, tmp_path: Path, device: str) -> None:
    for extra in (["--dry-run"], ["--executor", "local", "--quiet"]):
        refused(
            ["generate", str(spec_file), "--device", device, *extra], tmp_path / "s", "--device"
        )


@pytest.mark.parametrize("executor", ["local", "ray"])
def test_absent_device_is_one_line_before_anything_starts(
    spec_file: Path, tmp_path: Path, executor: str
) -> None:
    device = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: absent on every machine
    refused(["generate", str(spec_file), "--device", device, "--executor", executor, "--quiet"],
            tmp_path / "s", "--device", "CUDA device")  # fmt: skip


def test_store_below_a_file_is_one_line(spec_file: Path, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    store = tmp_path / "afile" / "sub"
    result = CliRunner().invoke(
        main, ["generate", str(spec_file), "--store", str(store), "--executor", "local", "--quiet"]
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and "afile" in result.output
    assert (tmp_path / "afile").read_text() == "x"


@pytest.mark.parametrize(
    "flags", [["--address", "127.0.0.1:6379"], ["--max-workers", "2"]], ids=["address", "workers"]
)
def test_local_executor_refuses_ray_only_flags(spec_file: Path, tmp_path: Path, flags) -> None:
    refused(["generate", str(spec_file), "--executor", "local", "--quiet", *flags], tmp_path / "s",
            flags[0], "--executor local")  # fmt: skip


@pytest.mark.parametrize(
    ("option", "key"),
    [("{train_size: 0}", "train_size"), ("{noise: -1.0}", "noise"), ("{bogus: 1}", "bogus"),
     ("{seed: -3}", "seed")],
)  # fmt: skip
def test_dataset_option_errors_name_file_and_key_before_training(
    spec_file: Path, tmp_path: Path, option: str, key: str
) -> None:
    for extra in (["--dry-run"], ["--executor", "local", "--quiet"]):
        refused(["generate", str(spec_file), "--set", f"dataset.options={option}", *extra],
                tmp_path / "s", "review.yaml: dataset 'tetris'", f"option '{key}'")  # fmt: skip


def test_dataset_errors_in_a_grid_name_the_file(spec_file: Path, tmp_path: Path) -> None:
    refused(["generate", str(spec_file), "--set", "grid.dataset.name=[tetris,mnist]", "--dry-run"],
            tmp_path / "s", "review.yaml: dataset 'mnist'", "test_size")  # fmt: skip


@pytest.mark.parametrize(
    "args",
    [["--set", "execution.gpus_per_task=4096"],
     ["--set", "execution.cpus_per_task=2", "--max-workers", "1"]],
    ids=["gpus", "cpus-above-max-workers"],
)  # fmt: skip
def test_ray_resources_this_machine_lacks_are_refused_not_waited_for(
    spec_file: Path, tmp_path: Path, args: list[str]
) -> None:
    refused(["generate", str(spec_file), "--quiet", "--executor", "ray", *args], tmp_path / "s",
            "execution.")  # fmt: skip


def test_store_that_cannot_be_created_is_one_line(spec_file: Path, tmp_path: Path) -> None:
    store = Path("/proc/modelzoo-review-store")  # /proc refuses new folders, even to root
    result = CliRunner().invoke(
        main, ["generate", str(spec_file), "--store", str(store), "--executor", "local", "--quiet"]
    )
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: ") and str(store) in result.output, result.output
