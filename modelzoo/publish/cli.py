"""The ``report``, ``publish`` and ``import`` commands (registered on ``modelzoo`` by cli.py)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("zoo", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Folder for the PNGs and report.md.  [default: reports/<zoo name>]")  # fmt: skip
@click.option("--epoch", type=int, default=None,
              help="Stored epoch whose weights are projected.  [default: the last]")  # fmt: skip
@click.option("--projection", type=click.Choice(["pca", "umap"]), default="pca",
              show_default=True, help="2-D projection of the weights.")  # fmt: skip
def report(zoo: Path, out: Path | None, epoch: int | None, projection: str) -> None:
    """Plots and tables of the zoo ZOO (a folder or a published archive) as PNG + Markdown.

    \b
    Writes: accuracy_over_epochs.png (test accuracy, a box per stored epoch),
    final_accuracy.png (per grid factor when the zoo has a grid),
    generalisation_gap.png (train vs. test accuracy), weights_projection.png
    (weights at --epoch coloured by accuracy and each factor), status.png, and
    report.md (the summary table of `modelzoo info` and every picture).
    Nothing is written into the zoo itself.

    \b
    Example:
      modelzoo report storage/tetris_seed --out reports/tetris_seed
    """
    from ..errors import ModelZooError
    from ..zoo import open_zoo
    from .report import inside, make_report

    with open_zoo(zoo) as opened:
        out = out or Path("reports") / opened.name
        if inside(out, Path(opened.path)):
            raise ModelZooError(f"--out {out}: inside the zoo folder {opened.path}; reading a zoo "
                                "never writes into it, choose a folder outside")  # fmt: skip
        written = make_report(opened, out, epoch, projection)
    click.echo(f"wrote {written} and its pictures")


@click.command()
@click.argument("zoo", type=click.Path(path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="The published folder to create (must not exist).")  # fmt: skip
@click.option("--license", "license_id", default="cc-by-4.0", show_default=True,
              help="License id for the card and Croissant (e.g. cc-by-4.0, cc0-1.0, mit).")  # fmt: skip
@click.option("--citation", type=click.Path(path_type=Path), default=None,
              help="A citation file (BibTeX or CFF) copied into the zoo and the card.")  # fmt: skip
@click.option("--archive", type=click.Choice(["tar.gz", "tar.zst"]), default=None,
              help="Write OUT.tar.gz / OUT.tar.zst instead of a folder.")  # fmt: skip
@click.option("--url", default=None, help="Where the zoo will be downloadable (for Croissant).")
def publish(zoo: Path, out: Path, license_id: str, citation: Path | None, archive: str | None,
            url: str | None) -> None:  # fmt: skip
    """Turn the zoo ZOO into a self-describing folder or archive that others verify and load.

    \b
    The result holds the store files byte for byte, spec.yaml, report/,
    README.md (zoo card with dataset-hub front matter), croissant.json
    (Croissant 1.0) and SHA256SUMS over every file. The zoo is verified first;
    the output is built under a temporary name and verified again.

    \b
    Examples:
      modelzoo publish storage/tetris_seed --out dist/tetris_seed
      modelzoo publish storage/tetris_seed --out dist/tetris_seed --archive tar.zst \\
          --license cc0-1.0 --citation CITATION.bib
      modelzoo verify dist/tetris_seed.tar.zst     # what a downloader runs
    """
    from .publish import publish_zoo

    written = publish_zoo(zoo, out, license_id, citation, archive, url)
    click.echo(f"published {zoo} as {written}")


IMPORT_FORMATS = ["ray-tune", "state-dicts", "unterthiner"]  # the importer registry's names (tested)


@click.command(name="import")
@click.argument("src", type=click.Path(path_type=Path))
@click.option("--from", "layout", type=click.Choice(IMPORT_FORMATS), required=True,
              help="The layout of SRC.")  # fmt: skip
@click.option("--out", type=click.Path(path_type=Path), required=True,
              help="The zoo folder to create (must not exist); its name is the zoo's name.")  # fmt: skip
@click.option("--dataset", default=None,
              help="Registered dataset the models classify (e.g. mnist, digits); required for "
              "ray-tune and state-dicts, unterthiner reads it from metrics.csv.gz.")  # fmt: skip
@click.option("--architecture", default=None,
              help="Registered architecture (required for state-dicts; ray-tune matches it by "
              "the state dict's shapes when omitted; unterthiner: cnn_unterthiner).")  # fmt: skip
@click.option("--properties", type=click.Path(path_type=Path), default=None,
              help="state-dicts: the CSV of properties.  [default: SRC/properties.csv]")  # fmt: skip
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Spec keys of the imported zoo, e.g. training.activation=relu (repeatable).")  # fmt: skip
def import_zoo(src: Path, layout: str, out: Path, dataset: str | None, architecture: str | None,
               properties: Path | None, overrides: tuple[str, ...]) -> None:  # fmt: skip
    """Convert an existing zoo in another layout into a modelzoo store, keeping every number.

    \b
    ray-tune     experiment folder of Model Zoos generators: one trial folder per
                 model with params.json (factors), result.json (a line per epoch,
                 line 0 untrained) and checkpoint_XXXXXX/checkpoints (torch state
                 dicts, read with weights_only=True; Ray's .pkl files are ignored)
    state-dicts  folder of .pt / .safetensors state dicts + properties.csv
                 (file, model, epoch, seed, metrics such as test_acc, factors)
    unterthiner  the Small CNN Zoo of Unterthiner et al. 2020, one dataset's
                 folder: weights.npy (a row per checkpoint, TensorFlow order),
                 metrics.csv.gz (modeldir, step = epoch, accuracies, config.*)
                 and layout.csv (varname, start, end, shape); kernels become
                 PyTorch's order, the network is cnn_unterthiner (4,970 values)
    Models that cannot be read are stored with status failed and the reason;
    models with non-finite weights as diverged.

    \b
    Examples:
      modelzoo import runs/mnist_experiment --from ray-tune --dataset mnist --out storage/mnist_rt
      modelzoo import weights/ --from state-dicts --dataset digits --architecture cnn_tiny \\
          --out storage/my_zoo --set training.activation=relu
      modelzoo import smallcnnzoo/mnist --from unterthiner --out storage/mnist_hyp
    """
    from .importers import get_importer

    written = get_importer(layout)(src, out, dataset, architecture, properties, overrides)
    click.echo(f"imported {src} as {written}")
