"""``--from state-dicts``: a folder of state-dict files plus a CSV of their properties.

The CSV (``--properties``, default ``properties.csv`` in the folder) has one row per file:
``file`` (path relative to the folder, required), ``model`` (rows with one value are epochs of one
model; default: each file is a model), ``epoch`` (default 0), ``seed``, metric columns named as
in the store (``test_acc``, ``train_loss``, ...), training settings (``lr``, ``activation``, ...)
and any other columns, which become generating factors. Files are ``.safetensors`` or torch files
read with ``weights_only=True``; the architecture is named with ``--architecture``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ...errors import ModelZooError
from ...evaluation import SCALAR_METRICS
from .common import (
    TRAINING_KEYS,
    ImportedModel,
    read_state_dict,
    register_importer,
    scalar,
    write_zoo,
)

RESERVED = {"file", "model", "epoch", "seed"}


@register_importer("state-dicts")
def import_state_dicts(source: Path, out: Path, dataset: str | None, architecture: str | None,
                       properties: Path | None = None, overrides: tuple[str, ...] = ()) -> Path:  # fmt: skip
    """Import a folder of state dicts described by a CSV."""
    if not architecture or not dataset:
        raise ModelZooError("--from state-dicts needs --architecture and --dataset")
    source = Path(source)
    table_path = Path(properties) if properties else source / "properties.csv"
    try:
        table = pd.read_csv(table_path)
    except (OSError, ValueError) as error:
        raise ModelZooError(f"{table_path}: cannot read the properties CSV ({error})") from None
    if "file" not in table.columns:
        raise ModelZooError(f"{table_path}: column 'file' is missing (columns: "
                            f"{', '.join(table.columns)})")  # fmt: skip
    table = table.assign(
        model=table["model"] if "model" in table else table["file"],
        epoch=table["epoch"].astype(int) if "epoch" in table else 0,
    )
    from tqdm import tqdm

    models = []
    groups = table.groupby("model", sort=False)
    for key, rows in tqdm(groups, total=groups.ngroups, desc="models", unit="model"):
        rows = rows.sort_values("epoch")
        first = rows.iloc[0]
        constant = {c: first[c] for c in rows.columns
                    if c not in RESERVED and c not in SCALAR_METRICS and rows[c].nunique() <= 1}  # fmt: skip
        model = ImportedModel(
            source=str(source / str(first["file"])),
            seed=int(first["seed"]) if "seed" in rows else 0,
            training={k: scalar(v) for k, v in constant.items() if k in TRAINING_KEYS},
            factors={k: scalar(v) for k, v in constant.items() if k not in TRAINING_KEYS},
            epochs=rows["epoch"].tolist(),
            metrics={c: rows[c].astype(float).tolist() for c in SCALAR_METRICS if c in rows},
        )
        if rows["epoch"].duplicated().any():
            model.error = f"{table_path}: model {key!r} lists an epoch twice"
        for file in rows["file"]:
            try:
                model.states.append(read_state_dict(source / str(file)))
            except ModelZooError as error:
                model.error = model.error or str(error)
                model.states.append(None)
        models.append(model)
    name = Path(out).name
    return write_zoo(Path(out), name, dataset, architecture, models, str(source), overrides)
