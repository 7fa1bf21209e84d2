"""Seed 003 Table 1 and seed 004 Table 2 on a generated zoo: train one autoencoder preset, then
sample from it and compare with the baselines (docs/reproductions.md, "Sampling").

One invocation trains one train-ae run (``--preset`` with ``--set`` overrides and ``--epochs``,
through the Python API, timed) into ``OUT/<preset>`` and then, unless ``--splits val``, runs
``modelzoo sample``'s comparison (``compare``: every ``--methods`` sampler, B_T from scratch, the
zoo's own models, the test-split reconstructions; Mann-Whitney U p-values and common-language
effect sizes) into ``OUT/samples``. Run it once per preset (two at a time on two cores with
``--threads 1``); ``--table`` then collects the finished folders into the papers' two tables,
and ``--smoothness`` asks of each whether the neighbourhood of good anchors decodes to good
networks (the premise of every KDE sampler).

``--splits val`` is for pilots that choose settings: it trains, then measures only the
validation split (reconstruction R^2 of the validation models' states, and the test-image accuracy
of the validation models at the last anchor epoch against their reconstructions), and samples
nothing, so no choice ever sees a test-split model or a sample.

    python benchmarks/sample_reproduction.py ZOO --preset lwln --epochs 150 \\
        --set model.d_model=128 --anchor-epochs 21-25 --out /tmp/smp/lwln --threads 1
    python benchmarks/sample_reproduction.py --table /tmp/smp/lwln /tmp/smp/no-lwln \\
        /tmp/smp/lc+ls /tmp/smp/lc+ls+lb

The earlier cut-down attempt (100-model, 10-epoch zoo, 40-epoch autoencoders with latent 16),
whose numbers docs/sample.md keeps, is this file as of commit 48417ac.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np


def epochs_arg(text: str) -> list[int]:
    """'E', 'A,B,C' or 'FIRST-LAST'."""
    if "-" in text:
        first, last = (int(p) for p in text.split("-"))
        return list(range(first, last + 1))
    return [int(p) for p in text.split(",")]


def r2(target: np.ndarray, output: np.ndarray) -> float:
    from sklearn.metrics import r2_score

    return float(r2_score(target, output, multioutput="variance_weighted"))


def accuracies(zoo, weights: np.ndarray) -> np.ndarray:
    """Test-image accuracy of networks given as flat weights (the zoo's test images)."""
    from modelzoo.sample import measure

    images = zoo.data("test")
    activation = zoo.manifest["spec"]["training"]["activation"]
    probs = measure.probabilities(zoo.plan, activation, weights, images.images)
    return (probs.argmax(-1) == images.labels.numpy()[None]).mean(axis=1)


def validation_report(zoo, rep, anchor_epochs: list[int]) -> dict:
    """Pilot numbers on the validation split only."""
    from modelzoo.hyperrep.data import epoch_window, read_states, recorded_pairs
    from modelzoo.sample.generate import decode, embed

    config = rep.config
    parts = zoo.select(status="ok").split(config["data"]["splits"], config["data"]["split_seed"])
    window = epoch_window(zoo, config["data"]["epochs"])
    w = read_states(zoo, recorded_pairs(zoo, parts["val"], window))
    w = w[np.isfinite(w).all(1)]
    out = {"val_states": len(w), "r2_val": r2(w, decode(rep, embed(rep, w)))}
    last = zoo.weights(parts["val"], max(anchor_epochs))
    last = last[np.isfinite(last).all(1)]
    original, rebuilt = accuracies(zoo, last), accuracies(zoo, decode(rep, embed(rep, last)))
    out.update(val_models=len(last), epoch=max(anchor_epochs),
               val_acc_mean=float(original.mean()), val_acc_max=float(original.max()),
               val_recon_acc_mean=float(rebuilt.mean()), val_recon_acc_max=float(rebuilt.max()))  # fmt: skip
    return out


def train(args, zoo) -> tuple[Path, float]:
    from modelzoo.hyperrep.api import run_training
    from modelzoo.hyperrep.config import build_config

    run = args.out / args.preset
    if run.exists():
        print(f"{run} exists: not trained again", flush=True)
        return run, float("nan")
    config = build_config(args.preset, overrides=args.overrides, epochs=args.epochs)
    started = time.perf_counter()
    run_training(zoo, config, run, preset=args.preset, progress=not args.quiet)
    return run, time.perf_counter() - started


def table2_row(zoo, accuracy, anchors_epochs: list[int], method: str) -> dict:
    """Seed 004 Table 2: best zoo model, best reconstruction, best generated, and the gaps."""
    m = zoo.metrics
    zoo_max = float(m.loc[m["epoch"].isin(anchors_epochs), "test_acc"].max())
    at0 = accuracy[accuracy["epoch"] == 0]
    recon = float(at0.loc[at0["label"] == "reconstruction", "test_acc"].max())
    gener = float(at0.loc[at0["label"] == method, "test_acc"].max())
    return {"zoo_max": zoo_max, "recon_max": recon, "delta_rec": recon - zoo_max,
            "gen_max": gener, "delta_gen": gener - zoo_max}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("zoo", type=Path, nargs="?", help="zoo folder (modelzoo generate ...)")
    parser.add_argument("--out", type=Path, help="folder for the run and its samples")
    parser.add_argument("--preset", help="train-ae preset (lwln, no-lwln, lc+ls, lc+ls+lb, ...)")
    parser.add_argument("--epochs", type=int, default=None, help="train-ae epochs")
    parser.add_argument("--set", dest="overrides", action="append", default=[],
                        help="train-ae override KEY=VALUE (repeatable)")  # fmt: skip
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--splits", default="test", choices=["val", "test"],
                        help="'val': pilot (validation numbers only, no sampling)")  # fmt: skip
    parser.add_argument("--methods", default="kde30", help="samplers for compare (or 'all')")
    parser.add_argument("--n", type=int, default=100, help="networks per sampler and baseline")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--anchor-epochs", type=epochs_arg, default=None,
                        help="anchor epochs, e.g. 21-25 (default: the run's data.epochs)")  # fmt: skip
    parser.add_argument("--min-accuracy", type=float, default=None)
    parser.add_argument("--finetune-epochs", type=int, default=0)
    parser.add_argument("--option", action="append", default=[], help="sampler KEY=VALUE")
    parser.add_argument("--table", nargs="+", type=Path, default=None,
                        help="collect finished OUT folders into the papers' tables and stop")  # fmt: skip
    parser.add_argument("--smoothness", nargs="+", type=Path, default=None,
                        help="probe the latent space around the anchors of finished OUT folders")  # fmt: skip
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    if args.table:
        return collect(args.table)
    if args.smoothness:
        return smoothness(args.smoothness, args.anchor_epochs, args.seed)
    if args.zoo is None or args.out is None or args.preset is None:
        parser.error("ZOO, --out and --preset are needed (or --table)")
    if args.quiet:
        os.environ["TQDM_DISABLE"] = "1"

    import pandas as pd
    import torch
    import yaml

    if args.threads:
        torch.set_num_threads(args.threads)
    from modelzoo import open_zoo
    from modelzoo.hyperrep import load_autoencoder
    from modelzoo.sample import compare

    zoo = open_zoo(args.zoo)
    args.out.mkdir(parents=True, exist_ok=True)
    run, seconds = train(args, zoo)
    rep = load_autoencoder(run)
    anchors = args.anchor_epochs or sorted(rep.config["zoo"]["epochs"])
    result = {"preset": args.preset, "overrides": args.overrides, "epochs": args.epochs,
              "train_seconds": seconds, "threads": torch.get_num_threads(),
              "checkpoint_epoch": rep.epoch,  # the autoencoder epoch the samples come from
              "anchor_epochs": anchors}  # fmt: skip
    if args.splits == "val":
        result.update(validation_report(zoo, rep, anchors))
        print(json.dumps(result, indent=1), flush=True)
        (args.out / "pilot.json").write_text(json.dumps(result, indent=1) + "\n")
        return None
    options = {k: yaml.safe_load(v) for k, v in (o.split("=", 1) for o in args.option)}
    started = time.perf_counter()
    report = compare(run, args.methods, out=args.out / "samples", n=args.n, seed=args.seed,
                     anchor_epochs=anchors, min_accuracy=args.min_accuracy,
                     finetune_epochs=args.finetune_epochs, options=options)  # fmt: skip
    result["sample_seconds"] = time.perf_counter() - started
    accuracy = pd.read_csv(report / "accuracy.csv")
    methods = json.loads((report / "settings.json").read_text())["methods"]
    result["table2"] = {m: table2_row(zoo, accuracy, anchors, m) for m in methods}
    result["settings"] = json.loads((report / "settings.json").read_text())
    (args.out / "result.json").write_text(json.dumps(result, indent=1, default=str) + "\n")
    summary = pd.read_csv(report / "report.csv")
    print(summary.to_string(float_format=lambda v: f"{v:.4g}"), flush=True)
    print(json.dumps({k: result[k] for k in ("train_seconds", "sample_seconds", "table2")},
                     indent=1), flush=True)  # fmt: skip
    return None


def smoothness(folders: list[Path], anchor_epochs: list[int] | None, seed: int) -> None:
    """Is the latent space smooth around the anchors? For each finished OUT folder: test accuracy
    of the best 30 % of the anchors decoded, of those embeddings moved by a fraction of the
    anchors' per-dimension spread, of kde30 samples and of a joint Gaussian KDE (scipy, Scott's
    bandwidth) over the same top-30 % anchors, and the mean distance of each to its nearest
    anchor (anchors: to their nearest other anchor)."""
    from scipy.stats import gaussian_kde

    from modelzoo.sample import draw
    from modelzoo.sample.api import Context, Settings
    from modelzoo.sample.generate import decode

    for folder in folders:
        run = next(p for p in folder.iterdir() if (p / "config.yaml").is_file())
        ctx = Context(run, Settings(n=100, seed=seed, anchor_epochs=anchor_epochs))
        a, zoo, rep = ctx.anchors, ctx.zoo, ctx.rep
        top = a.z[a.accuracy >= np.quantile(a.accuracy, 0.7)]
        rng = np.random.default_rng(seed)
        spread = a.z.std(axis=0)
        points = {"anchors (top 30 %)": top}
        points.update({f"top 30 % + {s} x spread": top + s * spread * rng.standard_normal(top.shape)
                       for s in (0.05, 0.2, 0.5)})  # fmt: skip
        points["kde30"] = draw("kde30", a.z, a.accuracy, 100, seed)
        points["joint KDE (top 30 %)"] = gaussian_kde(top.T, "scott").resample(100, seed=seed).T
        gaps = np.sqrt(((top[:, None] - top[None]) ** 2).sum(-1))
        np.fill_diagonal(gaps, np.inf)
        print(f"{folder.name}: {len(a.z)} anchors, their models {100 * a.accuracy.mean():.1f} %, "
              f"top 30 % {100 * a.accuracy[a.accuracy >= np.quantile(a.accuracy, 0.7)].mean():.1f} %")  # fmt: skip
        for name, z in points.items():
            near = np.sqrt(((z[:, None] - top[None]) ** 2).sum(-1))
            near = gaps.min(1) if z is top else near.min(1)
            acc = accuracies(zoo, decode(rep, z))
            print(
                f"  {name:28s} decoded {100 * acc.mean():5.1f} %  nearest top anchor {near.mean():.2f}"
            )


def collect(folders: list[Path]) -> None:
    """Print seed 003 Table 1 and seed 004 Table 2 rows from finished OUT folders."""
    import pandas as pd

    from modelzoo.sample import measure

    print("| run | label | epoch | n | mean +- std | median | max | p vs B_T | CLES vs B_T |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for folder in folders:
        summary = pd.read_csv(folder / "samples" / "report.csv")
        for row in summary.itertuples(index=False):
            print(f"| {folder.name} | {row.label} | {row.epoch} | {row.n} | "
                  f"{100 * row.mean:.1f} +- {100 * row.std:.1f} | {100 * row.median:.1f} | "
                  f"{100 * row.max:.1f} | {row.p_vs_bt:.3g} | {row.cles_vs_bt:.3f} |")  # fmt: skip
    print("\n| run | method | zoo max | recon max | delta rec | gen max | delta gen |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for folder in folders:
        result = json.loads((folder / "result.json").read_text())
        for method, t in result["table2"].items():
            print(f"| {folder.name} | {method} | {100 * t['zoo_max']:.1f} | "
                  f"{100 * t['recon_max']:.1f} | {100 * t['delta_rec']:+.1f} | "
                  f"{100 * t['gen_max']:.1f} | {100 * t['delta_gen']:+.1f} |")  # fmt: skip
    print("\nConsecutive pairs (first vs second), epoch 0, same sampler: Mann-Whitney U of test "
          "accuracy, CLES = P(second > first) + P(tie)/2")  # fmt: skip
    for first, second in zip(folders[::2], folders[1::2]):
        a, b = (pd.read_csv(f / "samples" / "accuracy.csv") for f in (first, second))
        for label in sorted(set(a["label"]) & set(b["label"]) - {"B_T (scratch)", "zoo"}):
            x, y = (t.loc[(t["label"] == label) & (t["epoch"] == 0), "test_acc"].to_numpy(float)
                    for t in (b, a))  # fmt: skip
            stats = measure.versus(x, y)
            print(f"{second.name} vs {first.name}, {label}: mean {100 * y.mean():.1f} -> "
                  f"{100 * x.mean():.1f}, p = {stats['p_value']:.3g}, CLES {stats['cles']:.3f}")  # fmt: skip


if __name__ == "__main__":
    main()
