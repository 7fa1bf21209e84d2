"""modelzoo fidelity: every statistic on tiny zoos equals a direct numpy / scikit-learn computation
from the stored weights and tables (read here with h5py-free Zoo accessors and plain numpy), the
paper's numbers are matched by spec name, and the command writes its files or fails in one line."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from PIL import Image
from sklearn.linear_model import Ridge
from sklearn.metrics import r2_score
from sklearn.preprocessing import StandardScaler

from modelzoo import open_zoo
from modelzoo.cli import ZooGroup
from modelzoo.fidelity import PAPER_ZOOS, Published, fidelity, resolve_paper
from modelzoo.fidelity.cli import fidelity as fidelity_command
from modelzoo.probe.probes import ALPHAS
from tests.test_zoo_helpers import grid_zoo, seed_zoo


@pytest.fixture(scope="module")
def seed():
    zoo = open_zoo(seed_zoo())
    return zoo, fidelity(zoo, progress=False)


@pytest.fixture(scope="module")
def grid():
    zoo = open_zoo(grid_zoo())
    return zoo, fidelity(zoo, paper="MNIST-HYP-1-FIX-SEED", progress=False)


def _states(zoo):
    """All stored states of the ok models as [rows, P], with model ids and epochs, straight from
    the zoo's weight array and tables."""
    w = zoo.weights()  # [M, E, P]
    ids = np.repeat(np.asarray(zoo.model_ids), w.shape[1])
    epochs = np.tile(np.asarray(zoo.epochs), w.shape[0])
    return w.reshape(-1, w.shape[-1]).astype(np.float64), ids, epochs


def test_var_is_the_mean_per_parameter_variance_of_all_states(seed):
    zoo, report = seed
    flat, _, _ = _states(zoo)
    expected = np.mean([np.var(flat[:, p]) for p in range(flat.shape[1])])
    assert report.value("VAR") == pytest.approx(expected, rel=1e-9)
    assert report.value("VARc") == pytest.approx(expected, rel=1e-9)  # one init, one activation


def test_varc_is_the_mean_within_group_variance(grid):
    zoo, report = grid
    flat, ids, _ = _states(zoo)
    activation = zoo.models.set_index("model_id").loc[ids, "activation"].to_numpy()
    groups = [flat[activation == a] for a in ("tanh", "relu")]
    within = np.mean([g.var(axis=0).mean() for g in groups])
    assert report.value("VARc") == pytest.approx(within, rel=1e-9)
    assert report.value("VAR") == pytest.approx(flat.var(axis=0).mean(), rel=1e-9)
    assert report.table.set_index("statistic").loc["VARc", "paper"] == 0.101


def test_accuracy_per_epoch_equals_a_groupby(seed):
    zoo, report = seed
    metrics = zoo.metrics
    for epoch, values in metrics.groupby("epoch")["test_acc"]:
        row = report.accuracy.set_index("epoch").loc[epoch]
        a = values.to_numpy()
        assert (row["mean"], row["std"], row["min"], row["max"]) == pytest.approx(
            (a.mean(), a.std(), a.min(), a.max()))  # fmt: skip
        assert row["median"] == pytest.approx(np.median(a))
    last = max(zoo.epochs)
    final = metrics.loc[metrics["epoch"] == last, "test_acc"].to_numpy()
    assert report.value(f"test accuracy mean at epoch {last} (%)") == pytest.approx(100 * final.mean())


def test_published_accuracy_points_are_compared_at_their_epochs(seed):
    zoo, _ = seed
    paper = Published("TOY", "a test", accuracy={("mean", 2): 50.0, ("max", None): 90.0})
    PAPER_ZOOS["TOY"] = paper
    try:
        report = fidelity(zoo, paper="toy", progress=False)
    finally:
        del PAPER_ZOOS["TOY"]
    metrics = zoo.metrics
    at_two = metrics.loc[metrics["epoch"] == 2, "test_acc"].mean()
    trained = metrics.loc[metrics["epoch"] >= 1, "test_acc"].max()
    table = report.table.set_index("statistic")
    assert table.loc["test accuracy mean at epoch 2 (%)", "ours"] == pytest.approx(100 * at_two)
    assert table.loc["test accuracy mean at epoch 2 (%)", "difference"] == pytest.approx(
        100 * at_two - 50.0)  # fmt: skip
    assert table.loc["test accuracy max over all trained states (%)", "ours"] == pytest.approx(
        100 * trained)  # fmt: skip


def test_probe_r2_equals_plain_ridge(seed):
    """W -> epoch and sW-free W -> test_acc, recomputed with scikit-learn on the zoo's split."""
    zoo, report = seed
    split = zoo.split((0.7, 0.15, 0.15), 0)
    w = zoo.weights().astype(np.float64)
    pos = {int(m): i for i, m in enumerate(zoo.model_ids)}
    acc = zoo.metrics.pivot(index="model_id", columns="epoch", values="test_acc")
    targets = {"epoch": np.broadcast_to(np.array(zoo.epochs, float), w.shape[:2]),
               "test_acc": acc.loc[list(zoo.model_ids), list(zoo.epochs)].to_numpy()}  # fmt: skip
    rows = {k: [pos[int(m)] for m in v] for k, v in split.items()}
    x = {k: w[r].reshape(-1, w.shape[-1]) for k, r in rows.items()}
    scaler = StandardScaler().fit(x["train"])
    for target, y in targets.items():
        ys = {k: y[r].ravel() for k, r in rows.items()}
        fits = [Ridge(alpha=a, solver="svd").fit(scaler.transform(x["train"]), ys["train"])
                for a in ALPHAS]
        best = max(fits, key=lambda f: r2_score(ys["val"], f.predict(scaler.transform(x["val"]))))
        expected = 100 * r2_score(ys["test"], best.predict(scaler.transform(x["test"])))
        assert report.value(f"R^2 W -> {target} (%)") == pytest.approx(expected, rel=1e-4, abs=1e-4)


def test_pca_ceiling_equals_an_svd_reconstruction(seed):
    zoo, report = seed
    split = zoo.split((0.7, 0.15, 0.15), 0)
    w = zoo.weights().astype(np.float64)
    pos = {int(m): i for i, m in enumerate(zoo.model_ids)}
    train = w[[pos[int(m)] for m in split["train"]]].reshape(-1, w.shape[-1])
    test = w[[pos[int(m)] for m in split["test"]]].reshape(-1, w.shape[-1])
    mean = train.mean(axis=0)
    _, _, vt = np.linalg.svd(train - mean, full_matrices=False)
    for k in (10, 25):
        basis = vt[:k]
        rebuilt = (test - mean) @ basis.T @ basis + mean
        expected = 1 - ((rebuilt - test) ** 2).sum() / ((test - test.mean(axis=0)) ** 2).sum()
        got = report.value(f"PCA-{k} reconstruction R^2, test split (%)")
        assert got == pytest.approx(100 * expected, abs=1e-6)


def test_the_paper_zoo_follows_the_spec_name(seed, grid):
    _, report = seed
    assert report.paper.name == "TETRIS-SEED"
    table = report.table.set_index("statistic")
    assert table.loc["R^2 sW -> epoch (%)", "paper"] == 96.4
    assert table.loc["R^2 W -> test_acc (%)", "source"] == "seed 001, Table 5 (left)"
    zoo, _ = grid
    assert resolve_paper(zoo, None) is None  # grid_tetris reproduces no paper zoo
    assert resolve_paper(zoo, "none") is None


def cli(args):
    group = ZooGroup(name="modelzoo", commands={"fidelity": fidelity_command})
    return CliRunner().invoke(group, ["fidelity", *map(str, args)])


def test_cli_prints_and_writes(tmp_path):
    out = tmp_path / "fid"
    result = cli([seed_zoo(), "--quiet", "--out", out])
    assert result.exit_code == 0, result.output
    assert "R^2 sW -> epoch (%)" in result.output and "TETRIS-SEED" in result.output
    table = pd.read_csv(out / "fidelity.csv")
    assert {"statistic", "paper", "ours", "difference", "source"} <= set(table.columns)
    assert "| R^2 W -> epoch (%) | 55.4 |" in (out / "fidelity.md").read_text()
    with Image.open(out / "accuracy.png") as image:
        assert image.size[0] > 300 and image.size[1] > 200
    assert len(pd.read_csv(out / "accuracy_by_epoch.csv")) == len(open_zoo(seed_zoo()).epochs)


@pytest.mark.parametrize("args, words", [
    (["--paper", "TETRIS-SEEDS"], "--paper: unknown paper zoo 'TETRIS-SEEDS'; choose one of: none, TETRIS-SEED"),
    (["--epochs", "99"], "--epochs: expected all, last, A:B or a list of stored epochs"),
    (["--splits", "a,b"], "--splits: expected three fractions"),
    (["--split-seed", "-3"], "split seed: expected an integer >= 0"),
])  # fmt: skip
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words):
    out = tmp_path / "never"
    result = cli([seed_zoo(), *args, "--out", out, "--quiet"])
    assert result.exit_code == 2 and words in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_zoo_and_full_out_folder(tmp_path):
    result = cli([tmp_path / "nothing"])
    assert result.exit_code == 2 and len(result.output.strip().splitlines()) == 1
    full = tmp_path / "full"
    full.mkdir()
    (full / "keep.txt").write_text("mine")
    result = cli([seed_zoo(), "--out", full])
    assert result.exit_code == 2 and "exists and is not an empty folder" in result.output
    assert [p.name for p in full.iterdir()] == ["keep.txt"]


def test_an_out_folder_that_cannot_be_made_is_refused_before_any_work(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = cli([seed_zoo(), "--out", blocker / "sub", "--quiet"])
    assert result.exit_code == 2 and "cannot be created" in result.output
    assert "R^2" not in result.output  # refused before the report was computed


def test_list_names_every_paper_zoo_and_help_teaches():
    listed = cli(["--list"]).output
    assert all(name in listed for name in PAPER_ZOOS) and "tetris_seed" in listed
    text = cli(["--help"]).output
    assert "VAR" in text and "Example" in text and "--paper" in text


def test_a_zoo_too_small_for_a_validation_split_is_measured_with_a_warning(tmp_path):
    """Three models: no validation split (the probes fall back to the smallest alpha), one test
    model, and a note that says the probe numbers are noise at this size."""
    from modelzoo.run import generate
    from modelzoo.spec import load_spec

    spec = load_spec("tetris_seed", ["seeds.range=[1,3]", "training.epochs=2",
                                     "dataset.options.train_size=200"])  # fmt: skip
    zoo = open_zoo(generate(spec, tmp_path, executor="local").zoo_dir)
    assert len(zoo.split()["val"]) == 0
    report = fidelity(zoo, progress=False)
    assert any("only 1 models in the test split" in note for note in report.notes)
    assert np.isfinite(report.value("VAR"))
