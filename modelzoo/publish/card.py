"""The zoo card: ``README.md`` with YAML front matter for dataset hubs, and a body for a reader
who has never heard of modelzoo (what the zoo is, how it was trained, how to load it with and
without modelzoo). The front matter follows the Hugging Face dataset card keys (pretty_name,
license, task_categories, tags, size_categories, configs with data_files for the Parquet tables),
so a hub shows the tables; modelzoo's own facts sit under the ``modelzoo`` key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import yaml

from .._version import __version__
from ..errors import ModelZooError

if TYPE_CHECKING:
    from ..zoo import Zoo

LICENSES = {  # hub id -> URL (Croissant wants a URL)
    "cc-by-4.0": "https://creativecommons.org/licenses/by/4.0/",
    "cc-by-sa-4.0": "https://creativecommons.org/licenses/by-sa/4.0/",
    "cc-by-nc-4.0": "https://creativecommons.org/licenses/by-nc/4.0/",
    "cc0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "mit": "https://opensource.org/licenses/MIT",
    "apache-2.0": "https://www.apache.org/licenses/LICENSE-2.0",
    "bsd-3-clause": "https://opensource.org/licenses/BSD-3-Clause",
    "odc-by": "https://opendatacommons.org/licenses/by/1-0/",
}
LOAD_MARKER = "<!-- load-without-modelzoo -->"


def license_url(license_id: str) -> str:
    """The URL of a license id; unknown ids are an error that lists the known ones."""
    if license_id not in LICENSES:
        raise ModelZooError(
            f"--license: unknown license {license_id!r}; choose one of: {', '.join(LICENSES)}"
        )
    return LICENSES[license_id]


def size_category(count: int) -> str:
    """The hub's size bucket for ``count`` rows (models)."""
    for bound, label in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"),
                         (1_000_000, "100K<n<1M")):  # fmt: skip
        if count < bound:
            return label
    return "n>1M"


def front_matter(zoo: Zoo, license_id: str) -> dict[str, Any]:
    """The YAML front matter of the card (hub keys + ``modelzoo`` keys)."""
    summary = zoo.summary()
    return {
        "pretty_name": f"{zoo.name}: {len(zoo)} {zoo.architecture} models on {zoo.dataset_name}",
        "license": license_id,
        "task_categories": ["image-classification"],
        "tags": [
            "model-zoo",
            "weight-space-learning",
            "modelzoo",
            zoo.dataset_name,
            zoo.architecture,
        ],
        "size_categories": [size_category(len(zoo))],
        "configs": [
            {"config_name": "models", "data_files": "models.parquet", "default": True},
            {"config_name": "metrics", "data_files": "metrics.parquet"},
        ],
        "modelzoo": {
            "format_version": int(zoo.manifest["format_version"]),
            "library_version": __version__,
            "written_by_version": zoo.manifest.get("library_version"),
            "dataset": zoo.dataset_name,
            "input_shape": list(zoo.input_shape),
            "num_classes": zoo.num_classes,
            "architecture": zoo.architecture,
            "parameters": zoo.parameters,
            "models": len(zoo),
            "epochs": zoo.epochs,
            "states": len(zoo) * len(zoo.epochs),
            "status": summary["status"],
            "generating_factors": summary["factors"],
            "settings": summary["settings"],
        },
    }


def training_in_words(spec: dict) -> str:
    """The resolved spec as sentences."""
    t = spec.get("training", {})
    parts = [
        f"Every model is a `{spec.get('architecture', {}).get('name')}` trained on "
        f"`{spec.get('dataset', {}).get('name')}` for {t.get('epochs')} epochs with "
        f"{t.get('optimizer')} (learning rate {t.get('lr')}, weight decay {t.get('weight_decay')}"
        f", momentum {t.get('momentum')}), batch size {t.get('batch_size')}, activation "
        f"{t.get('activation')}, dropout {t.get('dropout')}, initialisation {t.get('init')}, "
        f"loss {t.get('loss')}, schedule {t.get('schedule')}."
    ]
    grid = spec.get("grid") or {}
    if grid:
        axes = "; ".join(f"`{k}` in {v}" for k, v in grid.items())
        parts.append(f"The hyperparameter grid varies {axes} (every combination, each with every "
                     "seed; these keys override the values above).")  # fmt: skip
    seeds = spec.get("seeds") or {}
    described = {k: v for k, v in seeds.items() if v is not None and k in ("values", "range",
                 "fixed", "random")}  # fmt: skip
    if described:
        parts.append(f"Seeds: {described}.")
    if spec.get("source"):
        parts.append(f"Source: {spec['source']}.")
    return " ".join(parts)


def card(zoo: Zoo, license_id: str, citation: str | None, files: list[str], folder: str) -> str:
    """The whole README.md (front matter + body); ``folder`` is the published folder's name."""
    matter = front_matter(zoo, license_id)
    body = f"""# {matter["pretty_name"]}

This is a *model zoo*: a population of {len(zoo)} trained neural networks, stored with their
weights at {len(zoo.epochs)} points of training (epochs {zoo.epochs[0]}..{zoo.epochs[-1]}; epoch 0
is the initialisation) and their accuracy and loss at each of them. Zoos like this are data for
research on neural network weights (predicting accuracy from weights, learning representations of
weights, generating new weights). Every network has {zoo.parameters:,} parameters
(`{zoo.architecture}`) and classifies {zoo.dataset_name} images of shape
{"x".join(map(str, zoo.input_shape))} into {zoo.num_classes} classes.

## How it was trained

{training_in_words(zoo.manifest["spec"])}
The complete resolved specification is `spec.yaml`; `report/report.md` shows accuracy over
training, the final accuracy per generating factor, the generalisation gap and a projection of the
weights.

## Files

| file | what it holds |
| --- | --- |
| `zoo.json` | manifest: spec, dataset, architecture, parameter layout, epochs, shard list |
| `models.parquet` | one row per model: id, generating factors, status, final metrics |
| `metrics.parquet` | one row per (model, stored epoch): losses, accuracies, gap, per-class F1 |
| `shards/*.h5` | HDF5 `weights` float32 [models, epochs, parameters] (+ `model_ids`) |
| `croissant.json` | Croissant 1.0 description of every file |
| `SHA256SUMS` | sha256 of every file (`sha256sum -c SHA256SUMS`) |

{len(files)} files in all. Models whose training diverged or failed are kept, with their status
and the reason (`status`, `error` columns); their weights are NaN after the failure.

## Loading it with modelzoo

```python
from modelzoo import open_zoo

zoo = open_zoo("{folder}")            # this folder (or its .tar.gz / .tar.zst archive)
print(zoo.models.head())                 # factors and final metrics per model
net = zoo.model(model_id=int(zoo.model_ids[0]), epoch={zoo.epochs[-1]})  # a torch.nn.Module
```

`modelzoo verify {folder}` checks every file against `SHA256SUMS` and the manifest.

## Loading it without modelzoo (h5py + pyarrow)

A model's weights are one float32 vector: the parameter tensors in the manifest's `layout` order,
each flattened in C order, at its `offset` (PyTorch shapes: conv `[out, in, kH, kW]`, linear
`[out, in]`).

{LOAD_MARKER}
```python
import json, h5py, numpy as np, pyarrow.parquet as pq

zoo = "{folder}"  # path of this folder
manifest = json.load(open(f"{{zoo}}/zoo.json"))
models = pq.read_table(f"{{zoo}}/models.parquet").to_pandas()
row = models.iloc[0]
epoch_index = len(manifest["epochs"]) - 1  # position of the last stored epoch
with h5py.File(f"{{zoo}}/{{row['shard']}}", "r") as h5:
    flat = h5["weights"][row["row"], epoch_index]  # float32 [parameters]
tensors = {{
    s["name"]: flat[s["offset"] : s["offset"] + int(np.prod(s["shape"]))].reshape(s["shape"])
    for s in manifest["layout"]
}}
```

With Hugging Face `datasets`: `load_dataset("parquet", data_files="{{zoo}}/models.parquet")`.
"""
    if citation:
        body += f"\n## Citation\n\n```\n{citation.strip()}\n```\n"
    return "---\n" + yaml.safe_dump(matter, sort_keys=False, allow_unicode=True) + "---\n\n" + body
