"""Search the choices a paper leaves open for the zoo that comes closest to its published statistics.

Each variant is a list of ``--set`` overrides of a bundled spec. For every variant a slice of the
zoo (the first N seeds) is generated into a scratch store and ``modelzoo fidelity`` measures it;
one row per variant goes to a CSV and a Markdown table (with the paper's numbers as the first
row), so the whole search can be pasted into docs/reproductions.md. Rerunning skips variants
whose zoo is already complete (``generate`` resumes), so a search can be extended step by step.

    python benchmarks/fidelity_search.py --models 400 --out search_tetris.csv \\
        --variant "init=uniform" --variant "init=uniform(-0.15, 0.15)" \\
        --variant "init=uniform;dataset.options.noise=0.3"

Shorthands: ``init=X`` is ``training.init=X``, ``batch_size=N`` is ``training.batch_size=N``;
several overrides of one variant are separated by ``;``; ``--base`` overrides come first in every
variant (the table in docs/reproductions.md was measured on the preset of its time, which is
``--base "dataset.options.train_size=1000;dataset.options.noise=0.1"`` today). Two distances to the
paper, mean absolute differences in points: ``distance`` over the s(W) and W probes for epoch and
test accuracy (the four figures seed 001 Table 5 leads with), ``distance12`` over every probe the
paper reports except the generalisation gap (epoch, accuracy and four per-class F1 scores, W and
s(W)), which no i.i.d. setting reproduces.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

KEYS = {  # column -> statistic label of modelzoo fidelity
    "sW->epoch": "R^2 sW -> epoch (%)",
    "sW->acc": "R^2 sW -> test_acc (%)",
    "W->epoch": "R^2 W -> epoch (%)",
    "W->acc": "R^2 W -> test_acc (%)",
    "sW->gap": "R^2 sW -> gap (%)",
    "W->gap": "R^2 W -> gap (%)",
    "PCA-50": "PCA-50 reconstruction R^2, test split (%)",
}
SHORTHANDS = {"init": "training.init", "batch_size": "training.batch_size",
              "lr": "training.lr", "epochs": "training.epochs"}  # fmt: skip
DISTANCE_KEYS = ("sW->epoch", "sW->acc", "W->epoch", "W->acc")


def overrides(variant: str) -> list[str]:
    out = []
    for part in [p.strip() for p in variant.split(";") if p.strip()]:
        key, _, value = part.partition("=")
        out.append(f"{SHORTHANDS.get(key.strip(), key.strip())}={value.strip()}")
    return out


def measure(spec: str, variant: str, models: int, store: Path, base: str = "") -> dict:
    from modelzoo.fidelity import fidelity

    sets = overrides(base) + overrides(variant)
    from modelzoo.spec import load_spec

    # one folder per resolved zoo: the same zoo reached by other spellings is generated once
    resolved = load_spec(spec, [*sets, f"seeds.range=[1,{models}]"])
    folder = store / resolved.fingerprint[:12]
    command = [sys.executable, "-m", "modelzoo.cli", "generate", spec, "--store", str(folder),
               "--set", f"seeds.range=[1,{models}]", "--executor", "local", "--quiet"]  # fmt: skip
    for item in sets:
        command += ["--set", item]
    start = time.perf_counter()
    finished = subprocess.run(command, stdout=subprocess.DEVNULL)
    if finished.returncode != 0:
        raise SystemExit(f"variant {variant!r}: modelzoo generate failed (exit "
                         f"{finished.returncode}; its message is above)")  # fmt: skip
    seconds = time.perf_counter() - start
    zoo_dir = next(p for p in folder.iterdir() if (p / "zoo.json").is_file())
    report = fidelity(zoo_dir, progress=False)
    row = {"variant": variant, "models": models, "generate_s": round(seconds, 1)}
    last = report.accuracy.iloc[-1]
    row["final acc mean"] = round(100 * last["mean"], 1)
    row["final acc std"] = round(100 * last["std"], 1)
    for column, label in KEYS.items():
        try:
            row[column] = round(report.value(label), 1)
        except KeyError:
            row[column] = float("nan")
    row["VAR"] = round(report.value("VAR"), 4)
    if report.paper is not None:
        paper = {c: report.table.loc[report.table["statistic"] == KEYS[c], "paper"].iloc[0]
                 for c in DISTANCE_KEYS}  # fmt: skip
        row["distance"] = round(sum(abs(row[c] - paper[c]) for c in DISTANCE_KEYS) / 4, 1)
        probes = report.table[(report.table["kind"] == "probe") & report.table["paper"].notna()
                              & (report.table["target"] != "gap")]  # fmt: skip
        row["distance12"] = round(float(probes["difference"].abs().mean()), 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--spec", default="tetris_seed")
    parser.add_argument("--models", type=int, default=400, help="seeds 1..N of every variant")
    parser.add_argument("--variant", action="append", required=True,
                        help="overrides separated by ';' (see the module docstring)")  # fmt: skip
    parser.add_argument("--base", default="", help="overrides applied before every variant")
    parser.add_argument("--store", type=Path, default=Path("/tmp/fidelity_search"))
    parser.add_argument("--out", type=Path, default=Path("fidelity_search.csv"))
    args = parser.parse_args()
    rows = []
    previous = pd.read_csv(args.out) if args.out.is_file() else pd.DataFrame()
    for variant in args.variant:
        done = previous[(previous.get("variant") == variant) & (previous.get("models") == args.models)] \
            if len(previous) else previous  # fmt: skip
        if len(done):
            rows.append(done.iloc[0].to_dict())
            continue
        row = measure(args.spec, variant, args.models, args.store, args.base)
        print(" | ".join(f"{k}: {v}" for k, v in row.items()), flush=True)
        rows.append(row)
        merged = pd.concat([previous, pd.DataFrame(rows)]).drop_duplicates(["variant", "models"],
                                                                          keep="last")  # fmt: skip
        merged.to_csv(args.out, index=False)
    table = pd.DataFrame(rows)
    print("| " + " | ".join(table.columns) + " |")
    print("|" + " --- |" * len(table.columns))
    for _, row in table.iterrows():
        print("| " + " | ".join(str(v) for v in row) + " |")


if __name__ == "__main__":
    main()
