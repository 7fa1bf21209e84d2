"""modelzoo sample end to end on a tiny zoo: decoded networks, epoch-0 accuracy by plain torch,
fine-tuning from given weights (vectorised engine vs reference), the generated zoo through
open_zoo and verify, the report, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from click.testing import CliRunner
from lock_holder import lock_held_elsewhere
from scipy import stats
from test_zoo_helpers import seed_zoo

from modelzoo import open_zoo
from modelzoo.cli import ZooGroup
from modelzoo.hyperrep import train_autoencoder
from modelzoo.sample import draw, sample
from modelzoo.sample.api import Context, Settings
from modelzoo.sample.cli import sample as sample_command
from modelzoo.sample.generate import train_from
from modelzoo.store.verify import verify_zoo

AE = {"model": {"name": "feedforward", "ff_layers": 2, "latent": 6},
      "data": {"splits": [0.5, 0.25, 0.25]},
      "train": {"epochs": 3, "batch_size": 8, "lr": 3e-3, "checkpoint_every": 0,
                "eval_every": 3}}  # fmt: skip


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("sample") / "ae"
    train_autoencoder(seed_zoo(), AE, preset="ecd", out=out)
    return out


@pytest.fixture(scope="module")
def generated(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "kde_samples"
    return sample(run, "kde", n=5, out=out, seed=2, finetune_epochs=1)


def cli():
    group = ZooGroup()
    group.add_command(sample_command)
    return group


def test_decoded_weights_are_the_stored_networks_and_score_as_plain_torch(run, generated):
    from modelzoo.hyperrep import load_autoencoder

    rep = load_autoencoder(run)
    ctx = Context(run, Settings(n=5, seed=2))
    z = draw("kde", ctx.anchors.z, ctx.anchors.accuracy, 5, seed=2)
    decoded = rep.decode(z)
    np.testing.assert_array_equal(generated.weights(epochs=0), decoded)
    test = generated.data("test")
    for model_id in generated.model_ids:
        net = generated.model(int(model_id), 0)  # the architecture's nn.Module
        with torch.no_grad():
            acc = (net(test.images).argmax(1) == test.labels).double().mean().item()
        stored = generated.metrics.query(f"model_id == {model_id} and epoch == 0")["test_acc"]
        assert stored.item() == pytest.approx(acc, abs=1e-12)


def test_reconstructions_equal_decode_of_encode_and_load_into_the_architecture(run):
    from modelzoo.hyperrep import load_autoencoder
    from modelzoo.nets import flatten_parameters, load_flat_parameters

    rep, zoo = load_autoencoder(run), open_zoo(seed_zoo())
    w = zoo.weights(epochs=3)
    rebuilt = rep.decode(rep.encode(w))
    model = zoo.model(0, 3)  # the architecture's nn.Module, then the reconstruction loaded in
    load_flat_parameters(model, torch.from_numpy(rebuilt[0]))
    np.testing.assert_array_equal(flatten_parameters(model).numpy(), rebuilt[0])
    assert rebuilt.shape == w.shape and np.isfinite(rebuilt).all()


def test_vectorised_fine_tuning_from_given_weights_equals_the_reference(run):
    ctx = Context(run, Settings(n=4, seed=1, finetune_epochs=2))
    weights = ctx.rep.decode(draw("kde", ctx.anchors.z, ctx.anchors.accuracy, 4, seed=1))
    _, runs = ctx.runs_for("check", ctx.seeds, ctx.provenance("kde"))
    fast = train_from(runs, ctx.data, weights, 2, "vectorized")
    slow = train_from(runs, ctx.data, weights, 2, "reference")
    for a, b in zip(fast, slow):
        np.testing.assert_allclose(a.weights, b.weights, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(a.weights[0], b.weights[0])
    assert not np.allclose(fast[0].weights[0], fast[0].weights[2])  # it did train


def test_generated_zoo_opens_verifies_and_records_its_source(run, generated):
    assert len(generated) == 5 and generated.epochs == [0, 1]
    report = verify_zoo(generated.path)
    assert report.ok, report
    source = json.loads(generated.manifest["spec"]["source"])
    assert source["method"] == "kde" and source["n"] == 5 and source["finetune_epochs"] == 1
    assert source["run"] == str(Path(run).resolve())
    assert generated.manifest["layout"] == open_zoo(seed_zoo()).manifest["layout"]
    from modelzoo.cli import main

    shown = CliRunner().invoke(main, ["info", str(generated.path)]).output
    assert f"about          5 networks sampled with kde from train-ae run {source['run']}" in shown


def test_fine_tuning_on_the_zoos_own_dataset_keeps_its_options():
    from modelzoo.sample.generate import finetune_dataset

    zoo = open_zoo(seed_zoo())
    own = zoo.manifest["spec"]["dataset"]
    assert own["options"]  # the tiny zoo's dataset has non-default options to keep
    assert finetune_dataset(zoo, own["name"])["options"] == own["options"]


def test_report_on_a_tiny_zoo(run, tmp_path):
    out = tmp_path / "report"
    result = CliRunner().invoke(cli(), ["sample", str(run), "--method", "uniform,kde30",
                                        "--n", "6", "--finetune-epochs", "1", "--ensemble", "2",
                                        "--out", str(out), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    for name in ("report.md", "report.csv", "accuracy.csv", "diversity.csv", "accuracy.png",
                 "settings.json", "zoos/uniform/zoo.json", "zoos/kde30/zoo.json"):  # fmt: skip
        assert (out / name).is_file(), name
    assert not out.with_name("report.partial").exists()
    summary, acc = pd.read_csv(out / "report.csv"), pd.read_csv(out / "accuracy.csv")
    labels = set(summary["label"])
    assert {"uniform", "kde30", "B_T (scratch)", "zoo", "reconstruction",
            "kde30 ensemble of 2"} <= labels  # fmt: skip
    # the accuracies are the generated zoo's own metrics, and the statistics scipy's
    zoo = open_zoo(out / "zoos" / "kde30")
    stored = zoo.metrics.sort_values(["model_id", "epoch"])["test_acc"].to_numpy()
    mine = acc[acc["label"] == "kde30"].sort_values(["model", "epoch"])["test_acc"].to_numpy()
    np.testing.assert_allclose(mine, stored)
    row = summary[(summary["label"] == "kde30") & (summary["epoch"] == 1)].iloc[0]
    x = acc.query("label == 'kde30' and epoch == 1")["test_acc"]
    y = acc.query("label == 'B_T (scratch)' and epoch == 1")["test_acc"]
    if np.ptp(np.r_[x, y]) > 0:
        assert row["p_vs_bt"] == pytest.approx(stats.mannwhitneyu(x, y).pvalue)
    assert row["mean"] == pytest.approx(x.mean())
    ens = summary[(summary["label"] == "kde30 ensemble of 2") & (summary["epoch"] == 1)].iloc[0]
    e = acc.query("label == 'kde30 ensemble of 2' and epoch == 1")["test_acc"]
    f = acc.query("label == 'B_T (scratch) ensemble of 2' and epoch == 1")["test_acc"]
    assert len(e) == 3 and np.isnan(ens["p_vs_zoo"])  # 6 networks -> 3 ensembles; vs B_T's
    if np.ptp(np.r_[e, f]) > 0:
        assert ens["p_vs_bt"] == pytest.approx(stats.mannwhitneyu(e, f).pvalue)
    assert (out / "accuracy.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args, message", [
    (["--method", "kde31"], "unknown sampler 'kde31'; choose one of: uniform"),
    (["--ensemble", "1"], "--ensemble: expected 0 (none) or K >= 2"),
    (["--anchor-epochs", "99"], "--anchor-epochs: epoch(s) [99] have no train-split state in the run's embeddings; choose from ["),
    (["--finetune-data", "mnits"], "unknown dataset 'mnits'"),
    (["--option", "bandwith=0.1"], "--option bandwith: no chosen sampler takes it; valid: bandwidth"),
    (["--option", "bandwidth=abc"], "sampler kde30: option bandwidth='abc': expected 'scott'"),
    (["--method", "neigh30"], "sampler neigh30: needs at least 5 anchors, got 2"),
    (["--method", ","], "--method: no sampler given in ','"),
    (["--ensemble", "10", "--n", "4"], "--ensemble 10: more than the 4 networks per method"),
    (["--anchor-epochs", "5-2"], "--anchor-epochs: no epoch given"),
    (["--min-accuracy", "-5"], "--min-accuracy: expected a test accuracy in [0, 1], got -5"),
    (["--min-accuracy", "nan"], "--min-accuracy: expected a test accuracy in [0, 1], got nan"),
    (["--seed", "-5"], "--seed: expected an integer >= 0, got -5"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(run, tmp_path, args, message):
    out = tmp_path / "out"
    result = CliRunner().invoke(cli(), ["sample", str(run), *args, "--out", str(out)])
    assert result.exit_code == 2, result.output
    assert message in result.output and len(result.output.strip().splitlines()) == 1
    assert not out.exists() and not out.with_name("out.partial").exists()


def test_missing_run_folder_and_existing_out(run, tmp_path):
    result = CliRunner().invoke(cli(), ["sample", str(tmp_path / "nope"), "--out",
                                        str(tmp_path / "o")])  # fmt: skip
    assert result.exit_code == 2 and "not a train-ae run folder" in result.output
    (tmp_path / "taken").mkdir()
    result = CliRunner().invoke(cli(), ["sample", str(run), "--out", str(tmp_path / "taken")])
    assert result.exit_code == 2 and "already exists" in result.output


def test_ctrl_c_says_nothing_was_kept_and_leaves_nothing(run, tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("modelzoo.sample.report.build_report", interrupted)
    out = tmp_path / "stopped"
    result = CliRunner().invoke(cli(), ["sample", str(run), "--n", "3", "--out", str(out),
                                        "--quiet"])  # fmt: skip
    assert result.exit_code == 130, result.output
    assert "interrupted: nothing was kept (OUT.partial is removed" in result.output
    assert not out.exists() and not out.with_name("stopped.partial").exists()


def test_a_damaged_run_folder_is_one_line(run, tmp_path):
    import shutil

    # (best.safetensors: the run selects the best checkpoint, as train-ae's default)
    damage = {"embeddings.parquet": None, "best.safetensors": b"not safetensors",
              "config.yaml": b"model: [\n  oops"}  # fmt: skip
    for name, content in damage.items():
        broken = tmp_path / name.replace(".", "_")
        shutil.copytree(run, broken)
        if content is None:
            (broken / name).unlink()
        else:
            (broken / name).write_bytes(content)
        out = tmp_path / f"out_{broken.name}"
        result = CliRunner().invoke(cli(), ["sample", str(broken), "--out", str(out)])
        assert result.exit_code == 2, (name, result.output)
        assert f"{broken / name}: cannot read" in result.output, (name, result.output)
        assert len(result.output.strip().splitlines()) == 1, (name, result.output)
        assert not out.exists() and not out.with_name(out.name + ".partial").exists()


def test_decode_inverts_the_normalisation_by_an_independent_computation(run):
    """decode(z) = the decoder's normalised output mapped back per layer, w * std + mean with
    the train split's statistics in normalization.json (computed here from the raw file and
    the zoo's layout, not by the project's Normalization)."""
    from modelzoo.hyperrep import load_autoencoder

    rep = load_autoencoder(run)
    stats = json.loads((Path(run) / "normalization.json").read_text())
    assert stats["applied"]  # the ecd preset standardises: the inversion is not the identity
    z = np.random.default_rng(0).uniform(-0.5, 0.5, (4, rep.latent)).astype(np.float32)
    with torch.no_grad():
        normed = rep.tokens.detokenize(rep.model.decode(torch.from_numpy(z))).numpy()
    expected = normed.astype(np.float64).copy()
    for slot in open_zoo(seed_zoo()).manifest["layout"]:
        layer = stats["layers"][slot["name"].rsplit(".", 1)[0]]
        span = slice(slot["offset"], slot["offset"] + int(np.prod(slot["shape"])))
        expected[:, span] = normed[:, span] * max(layer["std"], 1e-4) + layer["mean"]
    np.testing.assert_allclose(rep.decode(z), expected, rtol=1e-5, atol=1e-6)


def test_a_busy_or_failing_out_is_refused_or_cleaned_up(run, tmp_path, monkeypatch):
    """A second sample on the same --out (another process holds OUT.partial) is refused with
    the holder's pid; a run that fails midway leaves neither OUT nor OUT.partial."""

    from modelzoo.errors import ModelZooError
    from modelzoo.sample import compare

    busy = tmp_path / "busy"
    with lock_held_elsewhere(busy.with_name("busy.partial")) as holder, \
            pytest.raises(ModelZooError, match=f"writing this folder \\(pid {holder.pid} "):  # fmt: skip
        compare(run, "kde", busy, n=3)
    assert not busy.exists()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("modelzoo.sample.report.build_report", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        compare(run, "kde", tmp_path / "failed", n=3)
    assert not (tmp_path / "failed").exists() and not (tmp_path / "failed.partial").exists()
    # and the folder a killed run left (the holder above, kill -9) is taken over and finished
    monkeypatch.undo()
    assert compare(run, "kde", busy, n=3) == busy and (busy / "report.md").is_file()
    assert not (busy / "writer.lock").exists() and not busy.with_name("busy.partial").exists()


def test_sequential_runs_sample_their_flattened_token_latents(tmp_path):
    """SANE-style runs (seed 004): anchors are the token latents of the stored weights,
    flattened; a drawn point decodes through the token decoder; reconstructions in the report
    are decode(encode(w, per_token=True))."""
    from modelzoo.hyperrep import load_autoencoder
    from modelzoo.hyperrep.data import read_states

    settings = {"model": {"d_model": 16, "heads": 2, "ff_dim": 16, "latent": 4, "blocks": 1,
                          "token_size": 9, "window": 0},
                "data": {"epochs": None, "splits": [0.5, 0.25, 0.25]},
                "train": {"epochs": 2, "batch_size": 4, "eval_every": 2}}  # fmt: skip
    train_autoencoder(seed_zoo(), settings, preset="lc+ls", out=tmp_path / "seq")
    rep, zoo = load_autoencoder(tmp_path / "seq"), open_zoo(seed_zoo())
    ctx = Context(tmp_path / "seq", Settings(n=3, seed=4))
    a = ctx.anchors
    tokens = rep.encode(read_states(zoo, pd.DataFrame({"model_id": a.model_ids,
                                                       "epoch": a.epochs})), per_token=True)  # fmt: skip
    assert a.z.shape == (len(a.model_ids), tokens.shape[1] * 4)
    np.testing.assert_allclose(a.z.reshape(tokens.shape), tokens, rtol=0, atol=1e-6)
    made = ctx.generate("pca-kde", "seq_samples")
    z = draw("pca-kde", a.z, a.accuracy, 3, seed=4)
    np.testing.assert_array_equal(made.weights, rep.decode(z.reshape(3, -1, 4).astype(np.float32)))
    assert made.weights.shape == (3, zoo.parameters) and np.isfinite(made.weights).all()
    result = CliRunner().invoke(cli(), ["sample", str(tmp_path / "seq"), "--method", "kde",
                                        "--n", "3", "--out", str(tmp_path / "rep"), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    from modelzoo.nets import load_flat_parameters

    accuracy = pd.read_csv(tmp_path / "rep" / "accuracy.csv")
    stored = accuracy.query("label == 'reconstruction' and epoch == 0")["test_acc"].to_numpy()
    config = rep.config["data"]
    test_ids = zoo.split(config["splits"], config["split_seed"])["test"]
    original = zoo.weights(test_ids, 3)
    rebuilt = rep.decode(rep.encode(original, per_token=True))
    test, expected = zoo.data("test"), []
    for w in rebuilt:
        net = zoo.model(int(test_ids[0]), 3)
        load_flat_parameters(net, torch.from_numpy(w))
        with torch.no_grad():
            expected.append((net(test.images).argmax(1) == test.labels).double().mean().item())
    np.testing.assert_allclose(np.sort(stored), np.sort(expected), atol=1e-12)
    assert len(open_zoo(tmp_path / "rep" / "zoos" / "kde")) == 3


def test_a_contrast_only_run_is_refused_and_the_runs_data_dir_is_the_default(run, tmp_path,
                                                                           monkeypatch):  # fmt: skip
    """An `ec` run's decoder was never trained; the images train-ae was pointed at (its
    --data-dir, recorded in config.yaml) are where sample looks when not told otherwise."""
    import shutil

    import modelzoo.data as data

    edited = tmp_path / "edited"
    shutil.copytree(run, edited)
    config = yaml.safe_load((edited / "config.yaml").read_text())
    config["loss"]["gamma"] = 1.0
    (edited / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    out = tmp_path / "out"
    result = CliRunner().invoke(cli(), ["sample", str(edited), "--out", str(out)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "loss.gamma=1" in lines[0], result.output
    assert not out.exists()
    config["loss"]["gamma"], config["data"]["data_dir"] = 0.5, str(tmp_path / "images")
    (edited / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    seen = []
    real = data.load_training_data
    monkeypatch.setattr(data, "load_training_data", lambda c: seen.append(c.data_dir) or real(c))
    Context(str(edited), Settings(n=1, seed=0))
    assert seen == [str(tmp_path / "images")]
    Context(str(edited), Settings(n=1, seed=0), data_dir=str(tmp_path / "given"))
    assert seen[-1] == str(tmp_path / "given")


def test_the_report_reads_every_image_from_the_same_data_dir(run, tmp_path, monkeypatch):
    """The comparison's fidelity images come from where sample was told (or the run recorded),
    not the default folder: a real-MNIST run failed there though --data-dir was given."""
    from modelzoo.zoo import Zoo

    seen = []
    real = Zoo.data
    monkeypatch.setattr(Zoo, "data", lambda self, split="test", data_dir=None, model_id=None:
                        seen.append(data_dir) or real(self, split, data_dir, model_id))  # fmt: skip
    images = tmp_path / "images"
    images.mkdir()
    result = CliRunner().invoke(cli(), ["sample", str(run), "--method", "uniform", "--n", "2",
                                        "--finetune-epochs", "1", "--data-dir", str(images),
                                        "--out", str(tmp_path / "out"), "--quiet"])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert seen and set(seen) == {str(images)}, seen


def test_a_dangling_symlink_out_is_refused_before_sampling(run, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    result = CliRunner().invoke(cli(), ["sample", str(run), "--method", "uniform", "--n", "2",
                                        "--out", str(link)])  # fmt: skip
    assert result.exit_code == 2 and "is a symbolic link" in result.output, result.output
    assert not (tmp_path / "link.partial").exists()
