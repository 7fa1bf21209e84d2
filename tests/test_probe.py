"""modelzoo probe: splits, s(W), probes and metrics, each against an independent computation
(numpy from the state dict, plain scikit-learn, scipy, a pairwise count), and the command's files
and errors. Zoos: tests/test_zoo_helpers.py (12 tetris seeds x 4 epochs; 12-model activation grid;
6 digits CNNs)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

from modelzoo import open_zoo
from modelzoo.cli import ZooGroup
from modelzoo.probe import kendall_tau, layer_statistics, load_samples, run_probe
from modelzoo.probe.cli import probe as probe_command
from modelzoo.probe.probes import ALPHAS, fit_probe, score
from modelzoo.tokens import WeightStructure
from tests.test_zoo_helpers import digits_zoo, grid_zoo, seed_zoo


@pytest.fixture(scope="module")
def zoo():
    return open_zoo(seed_zoo())


@pytest.fixture(scope="module")
def result(zoo):
    return run_probe(zoo, ["W", "sW", "pca_linear", "pca_rbf"], ood=[grid_zoo()], progress=False)


def cli(args):
    group = ZooGroup(name="modelzoo", commands={"probe": probe_command})
    return CliRunner().invoke(group, ["probe", *map(str, args)])


def test_no_model_in_two_splits_and_splits_are_the_zoos(zoo):
    table = load_samples(zoo).table
    assert (table.groupby("model_id")["split"].nunique() == 1).all()
    for name, ids in zoo.split((0.7, 0.15, 0.15), 0).items():
        assert set(table.loc[table["split"] == name, "model_id"]) == set(ids.tolist())
    assert len(table) == len(zoo) * len(zoo.epochs)


def test_epochs_last_and_window(zoo):
    last = load_samples(zoo, "last").table
    assert list(last["epoch"]) == [max(zoo.epochs)] * len(zoo)
    window = run_probe(zoo, ["sW"], ["test_acc"], epochs="1:2", progress=False)
    assert set(window.predictions["epoch"]) <= {1, 2}


@pytest.mark.parametrize("build", [seed_zoo, digits_zoo])  # tetris MLP: no biases; CNN: biases
def test_layer_statistics_equal_numpy_on_one_model(build):
    zoo = open_zoo(build())
    state = zoo.state_dict(3, 2)
    expected = []
    for module in dict.fromkeys(name.rsplit(".", 1)[0] for name in state):
        values = np.concatenate([state[f"{module}.{p}"].numpy().ravel() for p in ("weight", "bias")
                                 if f"{module}.{p}" in state]).astype(np.float64)  # fmt: skip
        expected += [values.mean(), values.var(), values.min(), np.percentile(values, 25),
                     np.median(values), np.percentile(values, 75), values.max()]  # fmt: skip
    got = layer_statistics(zoo.weights(3, 2)[None], WeightStructure.of(zoo))[0]
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_exact_linear_target_is_recovered_and_shuffled_is_not(zoo):
    samples = load_samples(zoo)  # s(W): fewer features (14) than train states (32)
    x = layer_statistics(samples.weights, WeightStructure.of(zoo))
    tr, va, te = (samples.rows(s) for s in ("train", "val", "test"))
    beta = np.random.default_rng(1).normal(size=x.shape[1])
    y = x @ beta + 0.5
    fitted = fit_probe("linear", "continuous", x[tr], y[tr], x[va], y[va])
    assert score("continuous", y[te], fitted.predict(x[te]))["r2"] > 0.999
    accuracy = samples.table["test_acc"].to_numpy()
    noise = np.random.default_rng(2).permutation(accuracy)  # shuffled: no link to the weights
    fitted = fit_probe("linear", "continuous", x[tr], noise[tr], x[va], noise[va])
    assert score("continuous", noise[te], fitted.predict(x[te]))["r2"] <= 0.05


def test_kendall_tau_equals_pairwise_count_and_scipy():
    from scipy.stats import kendalltau

    a = np.array([0.1, 0.4, 0.35, 0.8, 0.6, 0.2])
    b = np.array([1.0, 3.0, 2.5, 2.0, 5.0, 0.5])
    pairs = [(i, j) for i in range(6) for j in range(i + 1, 6)]
    concordant = sum(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j]) for i, j in pairs)
    assert kendall_tau(a, b) == pytest.approx(concordant / len(pairs))
    assert kendall_tau(a, b) == pytest.approx(kendalltau(a, b).statistic)
    assert np.isnan(kendall_tau(a, np.ones(6)))


def test_ridge_r2_equals_plain_sklearn(zoo, result):
    """The W -> epoch number recomputed with plain h5py-free scikit-learn, as the shared checker does."""
    split = zoo.split((0.7, 0.15, 0.15), 0)
    w = zoo.weights()
    epochs = np.broadcast_to(np.array(zoo.epochs, float), w.shape[:2])
    acc = zoo.metrics.pivot(index="model_id", columns="epoch", values="test_acc").to_numpy()
    pos = {int(m): i for i, m in enumerate(zoo.model_ids)}
    rows = {k: [pos[int(m)] for m in v] for k, v in split.items()}
    flat = {k: w[r].reshape(-1, w.shape[-1]) for k, r in rows.items()}
    scaler = StandardScaler().fit(flat["train"])
    for target, y in (("epoch", epochs), ("test_acc", acc)):  # noqa: B007 (used in query)
        ys = {k: y[r].ravel() for k, r in rows.items()}
        fits = [Ridge(alpha=a, solver="svd").fit(scaler.transform(flat["train"]), ys["train"])
                for a in ALPHAS]
        best = max(
            fits, key=lambda f: r2_score(ys["val"], f.predict(scaler.transform(flat["val"])))
        )
        expected = r2_score(ys["test"], best.predict(scaler.transform(flat["test"])))
        r = result.results
        got = r.query(
            "target == @target and features == 'W' and metric == 'r2' and split == 'test'"
        )
        assert got["value"].item() == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_tau_and_r2_in_table_match_the_predictions(result):
    preds = result.predictions.query("target == 'test_acc' and features == 'sW'")
    for split, part in preds.groupby("split"):  # noqa: B007 (used in query)
        from scipy.stats import kendalltau

        rows = result.results.query("target == 'test_acc' and features == 'sW' and split == @split")
        values = dict(zip(rows["metric"], rows["value"]))
        assert values["r2"] == pytest.approx(r2_score(part["true"], part["predicted"]))
        assert values["kendall_tau"] == pytest.approx(
            kendalltau(part["true"], part["predicted"]).statistic
        )
    assert {"test", "ood:grid_tetris"} <= set(preds["split"])


def test_the_seed_is_a_target_only_when_asked_for(zoo):
    default = run_probe(zoo, ["sW"], progress=False).results
    assert "seed" not in set(default["target"])
    asked = run_probe(zoo, ["sW"], ["seed"], progress=False).results
    assert set(asked["target"]) == {"seed"}


def test_constant_targets_are_skipped_with_a_note(result):
    assert any("lr: constant" in note for note in result.notes)
    assert "lr" not in set(result.results["target"])
    assert {"epoch", "test_acc", "gap", "f1_0"} <= set(result.results["target"])


def test_categorical_target_gets_accuracy():
    r = run_probe(grid_zoo(), ["sW"], ["activation", "epoch"], progress=False)
    acc = r.results.query("target == 'activation' and split == 'test'")
    assert list(acc["metric"]) == ["accuracy"] and 0.0 <= acc["value"].item() <= 1.0
    part = r.predictions.query("target == 'activation'")
    assert acc["value"].item() == pytest.approx((part["true"] == part["predicted"]).mean())


def test_cli_writes_results(tmp_path):
    out = tmp_path / "out"
    got = cli([seed_zoo(), "--features", "W,sW", "--targets", "test_acc,epoch,f1", "--out", out,
               "--quiet"])  # fmt: skip
    assert got.exit_code == 0, got.output
    table = pd.read_csv(out / "results.csv")
    assert list(table.columns) == ["target", "features", "probe", "metric", "split", "value"]
    assert set(table["target"]) == {"test_acc", "epoch", "f1_0", "f1_1", "f1_2", "f1_3"}
    assert "Table 5" in (out / "results.md").read_text()
    assert (out / "pred_test_acc_W.png").stat().st_size > 1000
    assert (out / "pred_test_acc_sW.png").is_file()


@pytest.mark.parametrize(
    "args, words",
    [
        (["--features", "W,nope"], ["nope", "sW", "pca_rbf", "umap"]),
        (["--targets", "nope"], ["nope", "test_acc", "f1"]),
        (["--epochs", "99"], ["--epochs", "all, last"]),
        (["--splits", "0.5,x"], ["--splits"]),
        (["--components", "0"], ["--components", ">= 1"]),
        (["--fit-samples", "1", "--features", "pca_rbf"], ["--fit-samples", ">= 20"]),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, args, words):
    out = tmp_path / "out"
    got = cli([seed_zoo(), *args, "--out", out, "--quiet"])
    assert got.exit_code == 2, got.output
    assert got.output.startswith("error:") and got.output.count("\n") == 1
    assert all(word in got.output for word in words)
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_missing_zoo_ood_architecture_and_full_out(tmp_path):
    assert cli([tmp_path / "none", "--out", tmp_path / "o"]).exit_code == 2
    got = cli([seed_zoo(), "--features", "sW", "--ood", digits_zoo(), "--quiet"])
    assert got.exit_code == 2 and "differs" in got.output
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("x")
    got = cli([seed_zoo(), "--features", "sW", "--out", full, "--quiet"])
    assert got.exit_code == 2 and sorted(p.name for p in full.iterdir()) == ["keep.txt"]


def test_help_teaches():
    got = CliRunner().invoke(probe_command, ["--help"])
    assert got.exit_code == 0 and "Example" in got.output and "--epochs" in got.output


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    from modelzoo.hyperrep import train_autoencoder

    tiny = {"model": {"d_model": 16, "heads": 2, "ff_dim": 32, "latent": 8, "dropout": 0.1},
            "projection": {"layers": 2, "hidden": 16, "out": 8},
            "train": {"epochs": 2, "batch_size": 8, "lr": 3e-3, "warmup": 0.1}}  # fmt: skip
    out = tmp_path_factory.mktemp("probe-ae") / "ecd"
    train_autoencoder(seed_zoo(), tiny, preset="ecd", out=out)
    return out


def test_embedding_features_are_the_runs_embeddings(zoo, ae_run):
    from modelzoo.probe.features import FeatureContext, build_transform

    stored = pd.read_parquet(ae_run / "embeddings.parquet").sort_values(["model_id", "epoch"])
    samples = load_samples(zoo)
    context = FeatureContext(samples.weights, WeightStructure.of(zoo))
    z = build_transform(f"embedding:{ae_run}", context)(samples.weights)
    columns = [c for c in stored.columns if c.startswith("z_")]
    np.testing.assert_allclose(z, stored[columns].to_numpy(), rtol=1e-4, atol=1e-5)
    got = cli([seed_zoo(), "--embeddings", ae_run, "--features", "sW", "--targets", "epoch",
               "--ood", grid_zoo(), "--quiet"])  # fmt: skip
    assert got.exit_code == 0, got.output
    assert f"embedding:{ae_run}" in got.output and "Table 7" in got.output


def test_mlp_probe_and_last_epoch_protocol(zoo):
    """--probe mlp on final checkpoints: metrics agree with sklearn on its own predictions."""
    r = run_probe(zoo, ["sW"], ["test_acc", "seed"], probe="mlp", epochs="last", progress=False)
    part = r.predictions.query("target == 'test_acc' and split == 'test'")
    assert set(part["epoch"]) == {max(zoo.epochs)} and len(part) == len(zoo.split()["test"])
    value = r.results.query("target == 'test_acc' and metric == 'r2' and split == 'test'")["value"]
    assert set(r.results["probe"]) == {"mlp"}
    assert value.item() == pytest.approx(r2_score(part["true"], part["predicted"]))


def test_an_encoder_trained_on_other_splits_is_noted(ae_run):
    """The run was trained on the default 70/15/15 split with seed 0 (its config.yaml records
    it); probing with another split seed may put its training models in the probe's test split."""
    kwargs = {"features": ["sW", f"embedding:{ae_run}"], "targets": ["epoch"], "progress": False}
    same = run_probe(seed_zoo(), **kwargs)
    other = run_probe(seed_zoo(), split_seed=1, **kwargs)
    assert not any("may have seen test models" in note for note in same.notes)
    assert any(f"embedding:{ae_run}: encoder trained on splits [0.7, 0.15, 0.15] (seed 0)" in note
               and "may have seen test models" in note for note in other.notes), other.notes


def test_an_embedding_run_is_loaded_once(ae_run, monkeypatch):
    """The up-front check of the run folder and the feature set share one loaded encoder."""
    import modelzoo.hyperrep as hyperrep

    calls = []
    real = hyperrep.load_autoencoder
    monkeypatch.setattr(hyperrep, "load_autoencoder", lambda path: calls.append(path) or real(path))
    run_probe(seed_zoo(), [f"embedding:{ae_run}"], ["epoch"], progress=False)
    assert calls == [str(ae_run)]


def test_embeddings_default_to_the_splits_their_run_was_trained_on(ae_run, tmp_path):
    """Without --splits / --split-seed, probing a run's embeddings uses that run's splits, so
    none of the encoder's training models lands in the probe's test split."""
    import shutil

    import yaml

    edited = tmp_path / "run"
    shutil.copytree(ae_run, edited)
    config = yaml.safe_load((edited / "config.yaml").read_text())
    config["data"]["splits"] = config["zoo"]["splits"] = [0.5, 0.25, 0.25]
    config["data"]["split_seed"] = config["zoo"]["split_seed"] = 1
    (edited / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    got = cli([seed_zoo(), "--embeddings", edited, "--targets", "epoch", "--quiet"])
    assert got.exit_code == 0, got.output
    assert "splits 0.5,0.25,0.25 (seed 1)" in got.output and "may have seen" not in got.output
    given = cli([seed_zoo(), "--embeddings", edited, "--targets", "epoch", "--split-seed", "0",
                 "--quiet"])  # fmt: skip
    assert "splits 0.5,0.25,0.25 (seed 0)" in given.output and "may have seen" in given.output


def test_no_validation_split_is_noted(zoo):
    result = run_probe(zoo, ["W"], ["epoch"], fractions=(0.8, 0.0, 0.2), progress=False)
    assert any("leave no validation states" in note for note in result.notes), result.notes
    tuned = run_probe(zoo, ["W"], ["epoch"], progress=False)
    assert not any("validation states" in note for note in tuned.notes)
    got = cli([seed_zoo(), "--features", "W", "--targets", "epoch", "--splits", "0.8,0,0.2",
               "--quiet"])  # fmt: skip
    assert got.exit_code == 0 and "note: splits [0.8, 0.0, 0.2]" in got.stderr, got.stderr


def test_ood_zoos_of_one_name_are_told_apart_and_an_unscorable_one_is_noted(tmp_path):
    """The same spec generated into other stores gives zoos of one name: each OOD zoo is its own
    rows (labelled by path), and an OOD zoo with an empty test split is a note, not silence."""
    import shutil

    first, second = tmp_path / "a" / "tetris_seed", tmp_path / "b" / "tetris_seed"
    shutil.copytree(seed_zoo(), first)
    shutil.copytree(seed_zoo(), second)
    result = run_probe(seed_zoo(), ["sW"], ["epoch"], ood=[first, second], progress=False)
    splits = set(result.results["split"])
    assert {f"ood:{first.resolve()}", f"ood:{second.resolve()}"} <= splits, splits
    from modelzoo.run import generate
    from modelzoo.spec import load_spec

    spec = load_spec("tetris_seed", ["seeds.range=[1,1]", "training.epochs=2",
                                     "dataset.options.train_size=200"])  # fmt: skip
    tiny = generate(spec, tmp_path / "tiny", executor="local").zoo_dir
    assert len(open_zoo(tiny).split()["test"]) == 0
    small = run_probe(seed_zoo(), ["sW"], ["epoch"], ood=[tiny], progress=False)
    assert not any(s.startswith("ood:") for s in small.results["split"])
    assert any("no recorded states in its test split" in note for note in small.notes), small.notes


def test_a_symlink_out_is_refused_before_the_work(tmp_path):
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "nowhere")
    got = cli([seed_zoo(), "--features", "sW", "--targets", "epoch", "--out", link])
    assert got.exit_code == 2 and "is a symbolic link" in got.output, got.output


def test_an_interrupted_train_ae_on_the_same_out_is_refused_before_the_work(tmp_path):
    """--out is claimed before the probe runs: a train-ae run interrupted there is named in one
    line (no table printed first) and keeps its checkpoint; a probe that fails midway leaves
    neither OUT nor OUT.partial."""
    from modelzoo.outdir import claimed

    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt), claimed(out, "train-ae", keep_on_failure=True) as work:
        (work / "checkpoint.safetensors").write_text("an hour")
        raise KeyboardInterrupt
    got = cli([seed_zoo(), "--features", "sW", "--targets", "epoch", "--quiet", "--out", out])
    assert got.exit_code == 2 and "interrupted `modelzoo train-ae` run" in got.output, got.output
    assert "R^2" not in got.output and len(got.output.strip().splitlines()) == 1
    assert (tmp_path / "run.partial" / "checkpoint.safetensors").read_text() == "an hour"
    got = cli([seed_zoo(), "--features", "nonsense", "--quiet", "--out", tmp_path / "bad"])
    assert got.exit_code == 2 and not list(tmp_path.glob("bad*"))


def test_notes_are_printed_once_on_a_terminal(monkeypatch):
    """On a terminal the printed table already ends with its notes: no second copy on stderr
    (a pipe or file gets them there, test_no_validation_split_is_noted)."""
    import io

    import click

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(click, "get_text_stream", lambda name, **kwargs: Terminal())
    got = cli([seed_zoo(), "--features", "W", "--targets", "epoch", "--splits", "0.8,0,0.2",
               "--quiet"])  # fmt: skip
    assert got.exit_code == 0 and "leave no validation states" in got.stdout, got.output
    assert "note:" not in got.stderr, got.stderr
