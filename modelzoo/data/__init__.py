"""Image datasets for training zoo models: a registry of loaders plus one preprocessing pipeline.

``load_training_data(DataConfig(name="mnist", resize=32))`` gives float32 ``[N, C, H, W]`` train,
validation and test tensors; ``input_shape`` answers the same question without reading a file.
Importing this package registers every dataset; torchvision itself is imported only on first load.
"""

from __future__ import annotations

from . import generated, tiny_imagenet, torchvision_sets  # noqa: F401  (importing registers them)
from .config import DataConfig, ImageData, TrainingData
from .files import DATA_DIR_ENV, resolve_data_dir
from .pipeline import input_shape, load_training_data, validate_config
from .registry import (
    DatasetInfo,
    RawSplits,
    dataset_info,
    list_datasets,
    num_classes,
    register_dataset,
)

__all__ = [
    "DATA_DIR_ENV",
    "DataConfig",
    "DatasetInfo",
    "ImageData",
    "RawSplits",
    "TrainingData",
    "dataset_info",
    "input_shape",
    "list_datasets",
    "load_training_data",
    "num_classes",
    "register_dataset",
    "resolve_data_dir",
    "validate_config",
]
