"""``modelzoo sparsify``: the sparse twin of a zoo (registered in modelzoo/cli.py)."""

from __future__ import annotations

import json
from pathlib import Path

import click


@click.command("sparsify")
@click.argument("zoo", type=click.Path(path_type=Path))
@click.option("--epochs", type=int, default=25, show_default=True,
              help="Sparsification epochs per model (the Model Zoos twins: 25).")  # fmt: skip
@click.option(
    "--out",
    type=click.Path(path_type=Path),
    default=None,
    help="The twin zoo folder to create (must not exist; required unless --dry-run).",
)
@click.option("--seed", type=int, default=0, show_default=True,
              help="Seed of the noise draws, data order and dropout masks (per model, derived "
              "from the model's own seed and this one).")  # fmt: skip
@click.option("--name", default=None, help="Zoo name of the twin (default: the --out folder name).")
@click.option("--dry-run", is_flag=True, help="Print models and states; train nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: the summary as JSON.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def sparsify(zoo: Path, epochs: int, out: Path | None, seed: int, name: str | None,
             dry_run: bool, as_json: bool, quiet: bool) -> None:  # fmt: skip
    """Write the sparse twin of ZOO: every model continues from its last stored checkpoint for
    --epochs epochs of variational-dropout sparsification (Molchanov, Ashukha, Vetrov 2017:
    a log sigma^2 per weight, the local reparameterisation trick, the paper's KL approximation,
    weights with log alpha > 3 pruned to zero), with the source zoo's optimizer, lr and batch
    size and the KL weight min(1, 0.01 (e-1)/N) of the Model Zoos repository.

    The twin is a zoo (open_zoo, info, verify read it) with the SAME model ids; its epoch 0 is
    the source's last checkpoint, epochs 1..N the pruned weights (zeros where pruned); its
    metrics are the source's plus `sparsity` (fraction of Linear/Conv2d weights that are zero);
    its manifest's spec.source records the source zoo (path, name, fingerprint) and settings.

    \b
    Examples:
      modelzoo sparsify storage/mnist_seed --epochs 25 --out storage/mnist_seed_sparse
      modelzoo sparsify storage/mnist_seed --dry-run --json
    """
    from ..errors import ModelZooError
    from .twin import plan_twin
    from .twin import sparsify as write_twin

    if epochs < 1:
        raise ModelZooError(f"--epochs: expected a whole number >= 1, got {epochs}")
    if dry_run:
        from ..zoo import open_zoo

        summary = plan_twin(open_zoo(zoo), epochs, seed, name).summary()
        if as_json:
            click.echo(json.dumps(summary, indent=2))
        else:
            click.echo(f"{summary['name']}: {summary['models']} models x {epochs} sparsification "
                       f"epochs = {summary['states']} states ({summary['stored_states']} stored "
                       "with each model's epoch 0, the source's last checkpoint)")  # fmt: skip
        return
    if out is None:
        raise ModelZooError("--out: required (the twin zoo folder to create), or pass --dry-run")
    result = write_twin(zoo, out, epochs, seed, name, progress=not quiet)
    click.echo(f"{result}: sparse twin of {zoo} ({epochs} epochs per model)")
