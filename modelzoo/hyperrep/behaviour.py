"""The behavioural loss's two ingredients: running a batch of weight vectors as networks, and the
query inputs they are run on (2025 paper, seed 004: Section 3, Appendix D.3).

:func:`network_outputs` runs the zoo's architecture functionally on M weight vectors at once
(``modelzoo.train.stacked.StackedNet``: grouped convolutions / batched products, plain torch ops, so
autograd differentiates through it into the decoder). It is the one place that builds a
``StackedNet``. Models of a zoo may differ in activation; each activation runs as its own stack.

Query sets (``loss.queries``): ``train`` -- images of the zoo's own training split (the paper's
default, 256 per batch); ``dataset`` -- training images of another registered dataset, converted
to the zoo's input shape (the paper's STL-10_32 variant); ``uniform`` -- uniform noise over the
range of the zoo's training images (the paper's "Random").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from ..architectures import ArchitecturePlan
from ..errors import ModelZooError
from ..seeding import generator


def network_outputs(
    plan: ArchitecturePlan, activations: np.ndarray, params: torch.Tensor, x: torch.Tensor
) -> list[tuple[np.ndarray, torch.Tensor]]:
    """``[(rows, logits [len(rows), n, K])]`` per activation group of the M rows of ``params``
    ``[M, P]`` (raw weights in the zoo's layout) on inputs ``x`` ``[n, C, H, W]``."""
    from ..train.stacked import StackedNet

    groups = []
    for activation in np.unique(activations):
        rows = np.flatnonzero(activations == activation)
        index = torch.from_numpy(rows).to(params.device)
        net = StackedNet(plan, str(activation), len(rows))
        groups.append((rows, net.forward(params.index_select(0, index), x, shared=True)))
    return groups


def model_activations(zoo: Any, model_ids: np.ndarray) -> np.ndarray:
    """The activation of each model (its models-table column, else the spec's setting)."""
    default = zoo.manifest["spec"]["training"].get("activation", "tanh")
    models = zoo.models.set_index("model_id")
    if "activation" not in models.columns:
        return np.full(len(model_ids), default, dtype=object)
    return models.loc[model_ids, "activation"].fillna(default).to_numpy(dtype=object)


class QuerySet:
    """Draws the query inputs of one batch, a pure function of (seed, epoch, batch)."""

    def __init__(self, zoo: Any, loss: dict[str, Any], data_dir: str | None, seed: int) -> None:
        self.kind, self.count, self.seed = loss["queries"], loss["query_count"], seed
        shape = tuple(zoo.input_shape)
        train = _zoo_images(zoo, data_dir)
        if self.kind == "dataset":
            train = _other_images(zoo, loss["query_dataset"], data_dir)
        if tuple(train.shape[1:]) != shape:
            raise ModelZooError(
                f"loss.queries: images of shape {tuple(train.shape[1:])}, the zoo's "
                f"networks take {shape}"
            )
        self.images = train
        self.low, self.high = float(train.min()), float(train.max())

    def draw(self, epoch: int, batch: int, device: torch.device) -> torch.Tensor:
        gen = generator(self.seed, f"ae-queries:{epoch}:{batch}")
        if self.kind == "uniform":
            shape = (self.count, *self.images.shape[1:])
            noise = torch.rand(shape, generator=gen)
            return (self.low + (self.high - self.low) * noise).to(device)
        index = torch.randint(0, len(self.images), (self.count,), generator=gen)
        return self.images[index].to(device)


def _zoo_images(zoo: Any, data_dir: str | None) -> torch.Tensor:
    varied = [c for c in zoo.models.columns if c.startswith("dataset_")]
    model_id = int(zoo.model_ids[0]) if varied else None
    return zoo.data("train", data_dir=data_dir, model_id=model_id).images


def _other_images(zoo: Any, name: str, data_dir: str | None) -> torch.Tensor:
    """Another dataset's training images in the zoo's input shape and normalisation."""
    from ..data import DataConfig, dataset_info, load_training_data

    info = dataset_info(name)
    channels, size, _ = zoo.input_shape
    base = zoo.data_config(int(zoo.model_ids[0]), data_dir)
    config = DataConfig(
        name=name,
        data_dir=data_dir,
        resize=size if info.size != size else None,
        grayscale=channels == 1 and info.channels == 3,
        rgb=channels == 3 and info.channels == 1,
        normalize=base.normalize,
    )
    return load_training_data(config).train.images
