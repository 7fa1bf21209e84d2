"""``modelzoo fidelity``: how close a zoo is to the paper zoo it reproduces."""

from __future__ import annotations

import contextlib
from pathlib import Path

import click


@click.command("fidelity")
@click.argument("zoo", type=click.Path(path_type=Path), required=False)
@click.option("--paper", default=None, metavar="NAME",
              help="Paper zoo to compare with (default: the one the zoo's spec reproduces, e.g. "
              "tetris_seed -> TETRIS-SEED); 'none' for our numbers alone. See --list.")  # fmt: skip
@click.option("--epochs", default="all", show_default=True, metavar="all|last|A:B|E,E",
              help="Model states the probes and variances use (seed 001: all).")  # fmt: skip
@click.option("--splits", default="0.7,0.15,0.15", show_default=True,
              help="Model-level train,val,test fractions (zoo.split).")  # fmt: skip
@click.option("--split-seed", default=0, show_default=True, help="Seed of the model-level split.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder to write (new or empty): fidelity.csv, fidelity.md, "
              "accuracy_by_epoch.csv, accuracy.png.")  # fmt: skip
@click.option("--list", "list_papers", is_flag=True, help="List the paper zoos and their sources.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def fidelity(zoo, paper, epochs, splits, split_seed, out, list_papers, quiet) -> None:
    """Is ZOO the zoo the paper describes? Computes the statistics the papers publish about
    their zoos and prints them beside the papers' numbers: linear-probe R^2 of the weights (W)
    and of their layer statistics (sW) for epoch, accuracy, generalisation gap, per-class F1
    and the varied hyperparameters (seed 001 Tables 4, 5, 13), the weight variances VAR / VARc
    (Table 4), test accuracy per epoch (seed 003 Table 1, seed 004 Table 2), and the PCA
    reconstruction ceiling of the weights.

    \b
    Example:
      modelzoo fidelity storage/tetris_seed
      modelzoo fidelity storage/mnist_seed --epochs 1:25 --out fidelity_mnist
      modelzoo fidelity storage/my_zoo --paper MNIST-SEED

    Probes and splits are modelzoo probe's (ridge with alpha chosen on validation, model-level
    70/15/15 split); a 'difference' is ours minus the paper's, in points.
    """
    from ..outdir import resolved
    from ..probe.cli import parse_fractions
    from ..probe.report import atomic_folder
    from .api import fidelity as compute
    from .published import PAPER_ZOOS, ZOO_OF_SPEC
    from .report import fill_report, text_table

    if list_papers:
        for name, published in PAPER_ZOOS.items():
            specs = ", ".join(s for s, p in ZOO_OF_SPEC.items() if p == name) or "-"
            click.echo(f"{name:22s} {published.source}  [bundled specs: {specs}]")
        return
    if zoo is None:
        raise click.UsageError("missing argument ZOO (a zoo folder, published folder or archive)")
    fractions = parse_fractions(splits)
    with contextlib.ExitStack() as stack:
        # --out claimed before the work: a busy or unusable one is refused now, not after it
        folder = None if out is None else stack.enter_context(atomic_folder(out, "fidelity"))
        report = compute(zoo, paper, epochs, fractions, split_seed, progress=not quiet)
        click.echo(text_table(report))
        for note in report.notes:
            click.echo(f"note: {note}", err=True)
        if folder is not None:
            fill_report(report, folder, f"epochs: {epochs}; splits {splits} (seed {split_seed})")
    if out is not None:
        click.echo(f"wrote {resolved(out)}/fidelity.csv, fidelity.md, accuracy_by_epoch.csv, "
                   "accuracy.png", err=True)  # fmt: skip
