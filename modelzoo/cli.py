"""The ``modelzoo`` command line. Every user error prints one ``error:`` line and exits with 2."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ._version import __version__
from .errors import ModelZooError

EXIT_USAGE = 2

# what Ctrl-C leaves behind, per command (the others write their output only when complete)
INTERRUPTED = {
    "generate": "finished models are stored; rerun the same command to resume",
    "train-ae": "a run that finished an epoch keeps it in <--out>.partial; rerun the same "
    "command to resume",
    "sample": "nothing was kept (OUT.partial is removed; sampling starts over); run it again",
}
INTERRUPTED_OTHERS = "before it finished; run the same command again"


class ZooGroup(click.Group):
    """Turns ModelZooError (bad spec, damaged zoo, missing data) and click's usage errors (an
    unknown command or option, a value of the wrong type) into one line and exit code 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as error:  # the group's own options (``modelzoo --bogus``)
            refuse_usage(error, ctx)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except ModelZooError as error:
            click.echo(f"error: {error}", err=True)
            ctx.exit(EXIT_USAGE)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a bare command group shows its help, as click does
        except click.UsageError as error:
            refuse_usage(error, ctx)
        except KeyboardInterrupt:
            said = INTERRUPTED.get(ctx.invoked_subcommand or "", INTERRUPTED_OTHERS)
            click.echo(f"interrupted: {said}", err=True)
            ctx.exit(130)


def refuse_usage(error: click.UsageError, ctx: click.Context) -> None:
    """click's usage error as one line: the command, what was wrong, where the help is; exit 2."""
    if error.ctx is not None:
        path = error.ctx.command_path
    else:  # some parser errors carry no context: name the subcommand being parsed, if any
        path = " ".join(filter(None, [ctx.command_path, ctx.invoked_subcommand]))
    message = " ".join(error.format_message().split())
    click.echo(f"error: {path}: {message} (see '{path} --help')", err=True)
    ctx.exit(EXIT_USAGE)


@click.group(cls=ZooGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="modelzoo")
def main() -> None:
    """Generate, inspect and load model zoos: populations of trained networks used as data.

    \b
    Typical session:
      modelzoo generate tetris_seed            # bundled spec -> ./storage/tetris_seed
      modelzoo status storage/tetris_seed      # progress and failures
      modelzoo info storage/tetris_seed        # factors, accuracy per epoch
      modelzoo verify storage/tetris_seed      # checksums, shapes, tables
      modelzoo spec list                       # the bundled specs from the papers

    \b
    The science on a zoo:
      modelzoo train-ae storage/tetris_seed --out runs/ecd     # hyper-representations
      modelzoo probe storage/tetris_seed                       # what the weights know
      modelzoo fidelity storage/tetris_seed                    # beside the paper's zoo
      modelzoo sample runs/ecd --method kde30 --out samples/   # new networks, with a report
      modelzoo publish storage/tetris_seed --out pub/          # zoo card, Croissant, sums

    In Python: `from modelzoo import open_zoo` (see docs/api.md).
    """


# ------------------------------------------------------------------------------ generate


@main.command()
@click.argument("spec")
@click.option(
    "--store",
    type=click.Path(path_type=Path),
    default=None,
    help="Store root; the zoo goes to STORE/<name>. Default: $MODELZOO_STORE or ./storage.",
)
@click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a spec key by dotted path, e.g. --set training.epochs=5 (repeatable).",
)
@click.option("--dry-run", is_flag=True, help="Print what the spec expands to and write nothing.")
@click.option("--json", "as_json", is_flag=True, help="With --dry-run: print one JSON object.")
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=None,
    help="Train only the first N runs of the expansion (one corner of a grid).",
)
@click.option(
    "--sample",
    type=click.IntRange(min=1),
    default=None,
    help="Train N runs spread over the grid (every value of every factor as evenly as the grid "
    "allows; deterministic). A preview of a hyperparameter zoo.",
)
@click.option(
    "--address",
    default=None,
    help="Ray cluster address (default: $RAY_ADDRESS, else a local Ray sized to this machine).",
)
@click.option(
    "--max-workers",
    type=click.IntRange(min=1),
    default=None,
    help="At most this many tasks at once (default: one per CPU core).",
)
@click.option(
    "--engine",
    type=click.Choice(["vectorized", "reference"]),
    default=None,
    help="Training engine (default from the spec: vectorized).",
)
@click.option(
    "--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)."
)
@click.option(
    "--executor",
    type=click.Choice(["auto", "ray", "local"]),
    default="auto",
    show_default=True,
    help="'local' trains in this process without Ray; 'auto' uses Ray for a cluster "
    "(--address / $RAY_ADDRESS) or a plan of several tasks, else this process.",
)
@click.option(
    "--models-per-task",
    type=click.IntRange(min=1),
    default=None,
    help="Models trained together in one task (default: sized to the device).",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with the image datasets (default: $MODELZOO_DATA_DIR).",
)
@click.option("--restart", is_flag=True, help="Delete an existing zoo of this name and start over.")
@click.option(
    "--no-estimate", is_flag=True, help="With --dry-run: skip the timed slice (no data is read)."
)
@click.option("--quiet", is_flag=True, help="No progress bar.")
def generate(spec, store, overrides, dry_run, as_json, limit, sample, address, max_workers, engine,
             device, executor, models_per_task, data_dir, restart, no_estimate, quiet) -> None:  # fmt: skip
    """Train the zoo described by SPEC (a path, or the name of a bundled spec).

    \b
    Interrupt it at any time: finished models are sealed in the store, and
    running the same command again trains only what is missing.

    \b
    The progress bar counts model-epochs (one model trained for one epoch)
    as they happen, in every task, so its ETA is meaningful from the start.
    --dry-run prints the plan and an estimate of the time on this machine
    (a few timed training steps of one task, extrapolated).

    \b
    Examples:
      modelzoo generate tetris_seed --limit 20
      modelzoo generate mnist_hyp_5_rand --sample 40 --data-dir ~/data --dry-run
      modelzoo generate specs/mnist_hyp_5_rand.yaml --data-dir ~/data
      modelzoo generate my_zoo.yaml --set training.epochs=5 --set seeds.range=[1,10]
    """
    from .plan import plan
    from .run import generate as run_generate
    from .run import recorded_grouping, runs_on_cluster, uses_ray
    from .spec import load_spec

    if executor == "local":
        for flag, value in (("--address", address), ("--max-workers", max_workers)):
            if value is not None:
                raise ModelZooError(f"{flag}: only valid with --executor ray, not --executor local")
    loaded = load_spec(spec, overrides)
    data_dir = str(data_dir) if data_dir else None
    if dry_run:
        from .run import default_store

        zoo_dir = (store if store is not None else default_store()) / loaded.name
        the_plan = plan(loaded, limit, engine, device, data_dir, models_per_task,
                        not runs_on_cluster(executor, address), sample=sample,
                        recorded=None if restart else recorded_grouping(zoo_dir))  # fmt: skip
        summary = the_plan.summary()
        if not no_estimate:
            local_ray = not runs_on_cluster(executor, address) and uses_ray(
                executor, address, len(the_plan.tasks), max_workers)
            summary["estimate"] = _estimate(the_plan, max_workers, local_ray)
        if as_json:
            click.echo(json.dumps(summary, indent=2, default=str))
        else:
            _print_plan(summary)
        return
    for flag, value in (("--json", as_json), ("--no-estimate", no_estimate)):
        if value:
            raise ModelZooError(f"{flag}: only valid together with --dry-run")
    bar = None
    if not quiet:
        from tqdm import tqdm

        bar = tqdm(total=0, unit=" model-epochs", desc=loaded.name, dynamic_ncols=True,
                   file=sys.stderr, unit_scale=True, smoothing=0.1)  # fmt: skip

    def progress(state) -> None:
        if bar is None:
            return
        bar.total = state.model_epochs_total
        bar.n = state.model_epochs
        bar.set_postfix_str(f"models {state.models}/{state.models_total}, failed {state.failed}",
                            refresh=False)  # fmt: skip
        bar.refresh()

    def say(message: str) -> None:
        if not quiet:
            (bar.write if bar is not None else click.echo)(message, file=sys.stderr)

    try:
        report = run_generate(loaded, store, address=address, max_workers=max_workers, engine=engine,
                              device=device, limit=limit, sample=sample, data_dir=data_dir,
                              restart=restart, executor=executor, models_per_task=models_per_task,
                              progress=progress, say=say)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    counts = ", ".join(f"{k} {v}" for k, v in report.status.items()) or "nothing new"
    how = f" ({report.executor})" if report.executor else ""
    click.echo(f"{report.zoo_dir}: trained {report.trained}, already stored {report.skipped} "
               f"({counts}) in {report.seconds:.1f} s{how}")  # fmt: skip


def _estimate(the_plan, max_workers, local_ray: bool = False) -> dict:
    """The dry run's time estimate, or why there is none (absent data is not an error here)."""
    from .errors import DataError
    from .estimate import estimate_plan

    if not the_plan.tasks:
        return {"seconds": 0.0, "text": "nothing to train"}
    try:
        estimate = estimate_plan(the_plan, max_workers, local_ray=local_ray)
    except DataError as error:  # a dataset that is there but cannot be read
        return {"seconds": None, "text": f"unavailable: {error}"}
    return {"seconds": estimate.seconds, "text": estimate.describe(),
            "step_seconds": estimate.step_seconds,
            "eval_seconds_per_example": estimate.eval_seconds_per_example,
            "timed_models": estimate.timed_models, "parallel_tasks": estimate.parallel_tasks,
            "synthetic_data": estimate.synthetic,
            "ray_start_seconds": estimate.startup_seconds}  # fmt: skip


def _print_plan(summary: dict) -> None:
    def both(key: str, fmt=lambda v: f"{v:,}") -> str:
        selected, whole = summary[key], summary[f"{key}_in_spec"]
        return fmt(selected) if selected == whole else f"{fmt(selected)} of {fmt(whole)} in the spec"

    def mib(value: int) -> str:
        return f"~{value / 2**20:.1f} MiB"

    click.echo(f"zoo            {summary['zoo']}")
    click.echo(f"selection      {summary['selection']}")
    click.echo(f"models         {both('models')}")
    click.echo(f"dataset        {summary['dataset']} {'x'.join(map(str, summary['input_shape']))}, "
               f"{summary['num_classes']} classes")  # fmt: skip
    click.echo(f"architecture   {summary['architecture']} ({summary['parameters']:,} parameters)")
    click.echo(
        f"epochs         {summary['epochs']} trained, {summary['stored_epochs']} stored per model"
    )
    click.echo(f"states         {both('states')}")
    click.echo(f"store size     {both('store_bytes', mib)} of weights")
    factors, covered = summary["factors"], summary["factors_covered"]
    if factors:
        click.echo("factors        (what varies)")
        for name, count in factors.items():
            shown = f"{count} values" if covered[name] == count else (
                f"{covered[name]} of {count} values in the selection")  # fmt: skip
            click.echo(f"  {name:14s} {shown}")
    else:
        click.echo("factors        none (a single model)")
    settings = ", ".join(f"{k} {v}" for k, v in summary["settings"].items())
    click.echo(f"settings       {settings}")
    click.echo(f"engine         {summary['engine']} on {summary['device']}: "
               f"{summary['training_groups']} training group(s), {both('tasks')} task(s) of up to "
               f"{summary['models_per_task']} models")  # fmt: skip
    if "estimate" in summary:
        click.echo(f"time           {summary['estimate']['text']}")


# ------------------------------------------------------------------------------ status


@main.command()
@click.argument("zoo", type=click.Path(path_type=Path))
def status(zoo: Path) -> None:
    """Progress and failures of the zoo folder ZOO."""
    import pandas as pd

    from .store.format import MODELS_TABLE, read_manifest
    from .store.published import resolve_zoo

    zoo = resolve_zoo(zoo)
    manifest = read_manifest(zoo)
    counts = manifest.get("counts", {})
    planned, done = counts.get("planned", 0), counts.get("done", 0)
    click.echo(f"{manifest['name']}: {done}/{planned} models stored "
               f"({100 * done / max(planned, 1):.0f}%) in {len(manifest['shards'])} shard(s)")  # fmt: skip
    click.echo(f"status         ok {counts.get('ok', 0)}, diverged {counts.get('diverged', 0)}, "
               f"failed {counts.get('failed', 0)}")  # fmt: skip
    click.echo(f"updated        {manifest.get('updated', '?')}")
    if done:
        models = pd.read_parquet(zoo / MODELS_TABLE)
        ok = models[models["status"] == "ok"]
        if len(ok):
            acc = ok["test_acc"]
            click.echo(f"test accuracy  mean {acc.mean():.3f}, min {acc.min():.3f}, "
                       f"max {acc.max():.3f} (final stored epoch)")  # fmt: skip
        bad = models[models["status"] != "ok"]
        for _, row in bad.head(10).iterrows():
            click.echo(f"  model {row['model_id']}: {row['status']}: {row['error']}")
        if len(bad) > 10:
            click.echo(f"  ... and {len(bad) - 10} more (see models.parquet)")
    if done < planned:
        click.echo("resume         run the same `modelzoo generate` command again")
    from .store.reader import shard_problems

    damaged = shard_problems(zoo, manifest["shards"])  # the check open_zoo makes
    for shard, problem in damaged:
        click.echo(f"damaged: {shard.relative_to(zoo)}: {problem}", err=True)
    if damaged:
        click.echo(f"{zoo}: {len(damaged)} damaged shard(s); run `modelzoo verify {zoo}`", err=True)
        raise SystemExit(1)


# ------------------------------------------------------------------------------ spec


@main.group(cls=ZooGroup)
def spec() -> None:
    """Inspect the spec format and the bundled specs."""


@spec.command("schema")
def spec_schema() -> None:
    """Print the JSON Schema of zoo specs (for editors and CI)."""
    from .spec import json_schema

    click.echo(json.dumps(json_schema(), indent=2))


@spec.command("list")
def spec_list() -> None:
    """List the bundled specs (usable by name in `modelzoo generate`)."""
    from .spec import expand, list_bundled_specs, load_spec

    for name in list_bundled_specs():
        loaded = load_spec(name)
        click.echo(f"{name:24s} {len(expand(loaded)):6d} models  {loaded.resolved['source']}")


@spec.command("show")
@click.argument("spec_name")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
def spec_show(spec_name: str, overrides: tuple[str, ...]) -> None:
    """Print SPEC resolved: every default filled in, overrides applied (what a zoo records)."""
    import yaml

    from .spec import load_spec

    resolved = load_spec(spec_name, overrides).resolved
    click.echo(yaml.safe_dump(resolved, sort_keys=False, allow_unicode=True), nl=False)


# ------------------------------------------------------------------------------ info


@main.command()
@click.argument("zoo", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (every epoch).")
@click.option(
    "--epochs",
    "epoch_rows",
    type=click.Choice(["compact", "all"]),
    default="compact",
    show_default=True,
    help="Accuracy rows: the first, a few intermediate and the last stored epoch, or all.",
)
def info(zoo: Path, as_json: bool, epoch_rows: str) -> None:
    """Size, factors, status counts and test accuracy over the stored epochs of the zoo ZOO.

    \b
    "factors" are the generating factors that vary between the models (with
    how many values each); "settings" are the ones all models share.
    A missing or truncated shard is reported here too (one line, exit 2).

    \b
    Examples:
      modelzoo info storage/tetris_seed
      modelzoo info storage/tetris_seed --epochs all
      modelzoo info storage/tetris_seed --json | jq .factors
    """
    from .zoo import open_zoo

    summary = open_zoo(zoo).summary()
    if as_json:
        click.echo(json.dumps(summary, indent=2))
        return
    shape = "x".join(map(str, summary["input_shape"]))
    status = ", ".join(f"{k} {v}" for k, v in sorted(summary["status"].items())) or "none"
    click.echo(f"zoo            {summary['name']} ({summary['path']})")
    if summary["description"]:
        click.echo(f"about          {summary['description']}")
    click.echo(f"models         {summary['models']} of {summary['planned']} planned ({status})")
    click.echo(f"size           {summary['bytes'] / 2**20:.2f} MiB in {summary['shards']} shard(s)")
    click.echo(f"dataset        {summary['dataset']} {shape}, {summary['num_classes']} classes")
    click.echo(f"architecture   {summary['architecture']} ({summary['parameters']:,} parameters)")
    click.echo(f"epochs         {len(summary['epochs'])} stored: {_short(summary['epochs'])}")
    if summary["factors"]:
        click.echo("factors        (what varies)")
        for name, values in summary["factors"].items():
            click.echo(f"  {name:14s} {len(values):5d} values: {_short(values)}")
    else:
        click.echo("factors        none")
    settings = ", ".join(f"{k} {v}" for k, v in summary["settings"].items())
    click.echo(f"settings       {settings or 'none'}")
    rows = summary["test_acc_per_epoch"]
    if rows:
        bars = "▁▂▃▄▅▆▇█"
        spark = "".join(
            bars[min(7, int(r["mean"] * 8))] if r["mean"] == r["mean"] else " " for r in rows
        )
        click.echo(f"test accuracy  per stored epoch, models with status ok: {spark}")
        click.echo("  epoch    mean     min     max  models")
        shown = rows if epoch_rows == "all" else [rows[i] for i in _compact_rows(len(rows))]
        for r in shown:
            click.echo(
                f"  {r['epoch']:5d}  {r['mean']:.4f}  {r['min']:.4f}  {r['max']:.4f}  {r['count']:6d}"
            )
        if len(shown) < len(rows):
            click.echo(f"  ({len(rows) - len(shown)} more epochs: --epochs all)")


def _compact_rows(count: int, intermediate: int = 4) -> list[int]:
    """Row positions of the first, a few evenly spaced intermediate and the last epoch."""
    if count <= intermediate + 2:
        return list(range(count))
    step = (count - 1) / (intermediate + 1)
    return sorted({0, count - 1, *(round(step * i) for i in range(1, intermediate + 1))})


def _short(values: list, limit: int = 8) -> str:
    shown = ", ".join(str(v) for v in values[:limit])
    return shown + (f", ... ({len(values)} in all)" if len(values) > limit else "")


# ------------------------------------------------------------------------------ verify


@main.command()
@click.argument("zoo", type=click.Path(path_type=Path))
def verify(zoo: Path) -> None:
    """Check checksums, shapes and tables of the zoo ZOO against its manifest.

    \b
    Exit codes: 0 intact, 1 damaged (each problem is printed), 2 not a zoo / unreadable format.
    """
    from .store.verify import verify_zoo

    report = verify_zoo(zoo)
    for note in report.notes:
        click.echo(f"note: {note}")
    if report.ok:
        click.echo(f"ok: {zoo} is intact ({report.shards} shard(s), {report.models} models, "
                   "checksums, shapes and tables agree)")  # fmt: skip
        return
    for problem in report.problems:
        click.echo(f"damaged: {problem}", err=True)
    click.echo(f"{zoo}: {len(report.problems)} problem(s) found", err=True)
    raise SystemExit(1)


# The science layer's commands; heavy imports happen inside each command.
from .fidelity.cli import fidelity  # noqa: E402
from .hyperrep.cli import train_ae  # noqa: E402
from .probe.cli import probe  # noqa: E402
from .publish.cli import import_zoo, publish, report  # noqa: E402
from .sample.cli import sample  # noqa: E402
from .sparsify.cli import sparsify  # noqa: E402

for _command in (train_ae, probe, fidelity, sample, sparsify, report, publish, import_zoo):
    main.add_command(_command)


def run() -> None:
    """The ``modelzoo`` executable (and ``python -m modelzoo.cli``): :func:`main`, then exit.

    When a command is done the process ends, and Python's shutdown would first garbage-collect
    every object still alive: after torch, pandas and pyarrow are loaded that pass takes about
    0.6 s on the 2-core box, longer than training a 20-model tetris preview. ``gc.freeze()``
    takes those objects out of the collector's reach, so the process exits without the pass (the
    operating system frees the memory). Nothing is left to finalise by then: the store writer,
    its shard files and the progress bar are closed by the commands themselves. Tests call
    :func:`main` in-process, where nothing is frozen.
    """
    import gc

    try:
        main()
    finally:
        gc.freeze()


if __name__ == "__main__":
    run()
