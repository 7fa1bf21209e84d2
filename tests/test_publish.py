"""Publish and report: round trip through a published folder and archives, the zoo card, the
Croissant file (validated by mlcroissant), the tables through Hugging Face datasets, the report's
PNGs, and refusals (bad input, tampered files, malicious archives)."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
from pathlib import Path

import h5py
import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from click.testing import CliRunner

from modelzoo.errors import StoreError
from modelzoo.store import published
from tests.test_zoo_helpers import grid_zoo

HOOKED = "resolve_zoo" in (Path(__file__).parent.parent / "modelzoo" / "zoo.py").read_text()
needs_hooks = pytest.mark.skipif(not HOOKED, reason="needs /tmp/notes/publisher-core.diff applied")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    root = tmp_path_factory.mktemp("publish")
    old = os.environ.get(published.CACHE_ENV)
    os.environ[published.CACHE_ENV] = str(root / "cache")
    from modelzoo.publish.publish import publish_zoo

    citation = root / "CITATION.bib"
    citation.write_text("@misc{grid, title={A grid zoo}}\n")
    source = grid_zoo()
    out = {
        "folder": publish_zoo(source, root / "dist" / "grid", "cc0-1.0", citation),
        "gz": publish_zoo(source, root / "dist" / "grid", archive="tar.gz"),
    }
    try:
        import zstandard  # noqa: F401  (optional: .tar.zst archives)

        out["zst"] = publish_zoo(source, root / "dist" / "grid", archive="tar.zst")
    except ImportError:
        out["zst"] = None
    yield {"root": root, "source": source, **out}
    if old is None:
        os.environ.pop(published.CACHE_ENV, None)
    else:
        os.environ[published.CACHE_ENV] = old


def _weights(folder: Path) -> dict[int, np.ndarray]:
    """Every model's weights read with h5py and pyarrow only (not through modelzoo)."""
    models = pq.read_table(folder / "models.parquet").to_pandas()
    out = {}
    for model_id, shard, row in models[["model_id", "shard", "row"]].itertuples(index=False):
        with h5py.File(folder / shard, "r") as h5:
            out[int(model_id)] = h5["weights"][row]
    return out


def test_published_folder_holds_the_zoo_byte_for_byte(env):
    folder, source = env["folder"], env["source"]
    for name in ("models.parquet", "metrics.parquet"):
        assert (folder / name).read_bytes() == (source / name).read_bytes()
    manifest = json.loads((source / "zoo.json").read_text())
    for shard in manifest["shards"]:
        assert (folder / shard["path"]).read_bytes() == (source / shard["path"]).read_bytes()
    assert yaml.safe_load((folder / "spec.yaml").read_text()) == manifest["spec"]
    assert (folder / "CITATION.bib").is_file()
    # SHA256SUMS lists every other file with its sha256 (recomputed with hashlib)
    import hashlib

    lines = dict(
        reversed(line.split("  ", 1)) for line in (folder / "SHA256SUMS").read_text().splitlines()
    )
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert set(lines) == files - {"SHA256SUMS"}
    for relative, digest in lines.items():
        assert hashlib.sha256((folder / relative).read_bytes()).hexdigest() == digest


@needs_hooks
@pytest.mark.parametrize("kind", ["folder", "gz", "zst"])
def test_round_trip_identical_weights_and_tables(env, kind):
    from modelzoo.store.verify import verify_zoo
    from modelzoo.zoo import open_zoo

    if env[kind] is None:
        pytest.skip("zstandard is not installed")
    zoo = open_zoo(env[kind])
    expected = _weights(env["source"])
    assert sorted(expected) == zoo.model_ids.tolist()
    for model_id, weights in expected.items():
        np.testing.assert_array_equal(zoo.weights(model_id), weights)
    source_models = pq.read_table(env["source"] / "models.parquet").to_pandas()
    assert zoo.models.reset_index(drop=True).equals(source_models)
    report = verify_zoo(env[kind])
    assert report.ok, report.problems
    assert not report.notes


def test_archive_members_stay_in_one_folder(env):
    with tarfile.open(env["gz"]) as tar:
        names = tar.getnames()
        assert all(n == "grid" or n.startswith("grid/") for n in names)
        assert all(m.isreg() or m.isdir() for m in tar.getmembers())
    unpacked = published.resolve_zoo(env["gz"])
    assert Path(os.environ[published.CACHE_ENV]) in unpacked.parents


@needs_hooks
def test_tampered_file_is_named_by_verify(env, tmp_path):
    import shutil

    from modelzoo.cli import main

    copy = tmp_path / "grid"
    shutil.copytree(env["folder"], copy)
    card = copy / "README.md"
    card.write_text(card.read_text().replace("model zoo", "mode1 zoo", 1))
    result = CliRunner().invoke(main, ["verify", str(copy)])
    assert result.exit_code == 1
    assert "README.md: sha256 differs" in result.output
    (copy / "report" / "status.png").unlink()
    result = CliRunner().invoke(main, ["verify", str(copy)])
    assert "report/status.png: listed in SHA256SUMS but missing" in result.output


@needs_hooks
def test_tampered_archive_member_is_named_by_verify(env, tmp_path):
    from modelzoo.store.verify import verify_zoo

    archive = tmp_path / "grid.tar.gz"
    with tarfile.open(env["gz"]) as source, tarfile.open(archive, "w:gz") as target:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isreg() else None
            if member.name == "grid/metrics.parquet":
                data = data[:-9] + bytes([data[-9] ^ 1]) + data[-8:]  # one bit, before the footer
            target.addfile(member, io.BytesIO(data) if data is not None else None)
    report = verify_zoo(archive)
    assert any(p.startswith("metrics.parquet: sha256 differs") for p in report.problems)


def _evil(path: Path, kind: str) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        ok = tarfile.TarInfo("zoo/zoo.json")
        ok.size = 2
        tar.addfile(ok, io.BytesIO(b"{}"))
        bad = tarfile.TarInfo({"escape": "zoo/../../escaped.txt", "absolute": "/tmp/abs.txt",
                               "symlink": "zoo/link", "device": "zoo/dev"}[kind])  # fmt: skip
        if kind == "symlink":
            bad.type, bad.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(bad)
        elif kind == "device":
            bad.type = tarfile.CHRTYPE
            tar.addfile(bad)
        else:
            bad.size = 4
            tar.addfile(bad, io.BytesIO(b"evil"))
    return path


@pytest.mark.parametrize("kind", ["escape", "absolute", "symlink", "device"])
def test_malicious_archive_is_refused_and_nothing_written(env, tmp_path, kind):
    archive = _evil(tmp_path / f"{kind}.tar.gz", kind)
    before = {p for p in tmp_path.rglob("*")}
    cache = Path(os.environ[published.CACHE_ENV]) / "archives"
    cached_before = set(cache.iterdir()) if cache.exists() else set()
    with pytest.raises(StoreError, match="refusing to unpack") as error:
        published.resolve_zoo(archive)
    assert "\n" not in str(error.value)
    assert {p for p in tmp_path.rglob("*")} == before
    assert not (tmp_path.parent / "escaped.txt").exists()
    assert (set(cache.iterdir()) if cache.exists() else set()) == cached_before


def test_damaged_archive_is_one_line(tmp_path):
    archive = tmp_path / "broken.tar.gz"
    archive.write_bytes(b"\x1f\x8b this is not gzip")
    with pytest.raises(StoreError, match="unreadable archive") as error:
        published.resolve_zoo(archive)
    assert "\n" not in str(error.value)


def test_card_front_matter_and_snippet_without_modelzoo(env):
    from modelzoo.publish.card import LOAD_MARKER
    from modelzoo.zoo import open_zoo

    text = (env["folder"] / "README.md").read_text()
    _, matter, body = text.split("---\n", 2)
    card = yaml.safe_load(matter)
    assert card["license"] == "cc0-1.0" and card["size_categories"] == ["n<1K"]
    assert {c["config_name"]: c["data_files"] for c in card["configs"]} == {
        "models": "models.parquet", "metrics": "metrics.parquet"}  # fmt: skip
    source = open_zoo(env["source"])
    facts = card["modelzoo"]
    assert (facts["parameters"], facts["models"], facts["states"]) == (
        source.parameters, len(source), len(source) * len(source.epochs))  # fmt: skip
    assert facts["generating_factors"]["activation"] == ["relu", "tanh"]
    snippet = re.search(r"```python\n(.*?)```", body.split(LOAD_MARKER)[1], re.S).group(1)
    snippet = snippet.replace('zoo = "grid"', f'zoo = "{env["folder"]}"')
    scope: dict = {}
    exec(compile(snippet, "README.md", "exec"), scope)
    first = int(pq.read_table(env["source"] / "models.parquet")["model_id"][0].as_py())
    for name, tensor in source.state_dict(first, source.epochs[-1]).items():
        np.testing.assert_array_equal(scope["tensors"][name], tensor.numpy())


def test_croissant_validates_and_lists_every_file(env):
    mlc = pytest.importorskip("mlcroissant")

    folder = env["folder"]
    document = json.loads((folder / "croissant.json").read_text())
    dataset = mlc.Dataset(str(folder / "croissant.json"))  # raises on validation errors
    records = list(dataset.records("models"))
    models = pq.read_table(folder / "models.parquet").to_pandas()
    assert [r["models/model_id"] for r in records] == models["model_id"].tolist()
    described = {f["contentUrl"]: f["sha256"] for f in document["distribution"]}
    sums = dict(
        reversed(line.split("  ", 1)) for line in (folder / "SHA256SUMS").read_text().splitlines()
    )
    assert described == {k: v for k, v in sums.items() if k != "croissant.json"}


def test_tables_load_with_hugging_face_datasets(env):
    load_dataset = pytest.importorskip("datasets").load_dataset

    folder = env["folder"]
    for table in ("models", "metrics"):
        loaded = load_dataset("parquet", data_files=str(folder / f"{table}.parquet"),
                              cache_dir=str(env["root"] / "hf"))["train"]  # fmt: skip
        expected = pq.read_table(folder / f"{table}.parquet")
        assert loaded.num_rows == expected.num_rows
        assert loaded.column_names == expected.column_names
        np.testing.assert_array_equal(np.asarray(loaded["test_acc"], dtype=float),
                                      expected["test_acc"].to_numpy())  # fmt: skip


def test_report_pngs_are_real_pictures(env):
    from PIL import Image

    report = env["folder"] / "report"
    text = (report / "report.md").read_text()
    for name in ("accuracy_over_epochs", "final_accuracy", "generalisation_gap",
                 "weights_projection", "status"):  # fmt: skip
        with Image.open(report / f"{name}.png") as image:
            assert image.format == "PNG"
            assert image.size[0] >= 300 and image.size[1] >= 250
            assert len(set(image.convert("L").getdata())) > 10  # not a blank canvas
        assert f"({name}.png)" in text
    assert "| factor activation | relu, tanh |" in text


def test_cli_refuses_bad_input_with_one_line(env, tmp_path):
    from modelzoo.cli import ZooGroup
    from modelzoo.publish.cli import publish, report

    group = ZooGroup(commands={"publish": publish, "report": report})
    runner = CliRunner()
    cases = [
        ["publish", str(env["source"]), "--out", str(env["folder"])],  # exists
        ["publish", str(env["source"]), "--out", str(tmp_path / "x"), "--license", "gpl-9"],
        ["publish", str(tmp_path / "nothing"), "--out", str(tmp_path / "y")],
        ["report", str(env["source"]), "--out", str(tmp_path / "r"), "--epoch", "99"],
        ["report", str(env["folder"]), "--out", str(env["folder"] / "more")],  # inside the zoo
        ["publish", str(env["source"]), "--out", str(env["source"] / "dist")],
    ]
    for args in cases:
        result = runner.invoke(group, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.output.count("\n") == 1 and result.output.startswith("error: ")
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not list(tmp_path.glob(".*tmp"))
    result = runner.invoke(group, ["report", str(env["source"]), "--out", str(tmp_path / "r")])
    assert result.exit_code == 0 and (tmp_path / "r" / "report.md").is_file()


@needs_hooks
def test_reading_a_published_zoo_writes_nothing_into_it(env):
    from modelzoo.dataset import ZooDataset
    from modelzoo.zoo import open_zoo

    folder = env["folder"]
    before = {p: p.stat().st_mtime_ns for p in folder.rglob("*")}
    zoo = open_zoo(folder)
    dataset = ZooDataset(zoo, "train", normalize=True)
    assert len(dataset) > 0
    assert {p: p.stat().st_mtime_ns for p in folder.rglob("*")} == before
    cached = list((Path(os.environ[published.CACHE_ENV]) / "zoos").rglob("normalization.json"))
    assert len(cached) == 1
    # the cached statistics are the per-layer mean of the train models' weights (numpy)
    entry = next(iter(json.loads(cached[0].read_text())["entries"].values()))
    layer, stats = next(iter(entry["layers"].items()))
    slots = [s for s in zoo.layout if s.name.rsplit(".", 1)[0] == layer]
    ids = zoo.split()["train"]
    values = np.concatenate([zoo.weights(ids)[:, :, s.offset : s.offset + s.size].reshape(-1)
                             for s in slots])  # fmt: skip
    assert stats["mean"] == pytest.approx(float(values.astype(np.float64).mean()), rel=1e-9)
