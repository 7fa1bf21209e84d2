"""Importers of the layouts other zoos use today (registry: ``IMPORTERS``)."""

from . import ray_tune, state_dicts, unterthiner  # noqa: F401  (each registers itself)
from .common import IMPORTERS, get_importer, register_importer

__all__ = ["IMPORTERS", "get_importer", "register_importer"]
