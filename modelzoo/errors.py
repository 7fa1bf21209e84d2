"""The one exception type users see: a message that names the file, the key and what was expected.

The CLI prints ``error: <message>`` for these and exits with code 2, without a traceback. Anything
else escaping is a bug in modelzoo and keeps its traceback.
"""

from __future__ import annotations


class ModelZooError(Exception):
    """Bad input or an unusable file, explained in one line."""


class SpecError(ModelZooError):
    """A zoo spec that cannot be loaded, validated or expanded."""


class DataError(ModelZooError):
    """An image dataset that is absent, damaged or cannot be fetched."""


class StoreError(ModelZooError):
    """A zoo folder that is damaged, foreign or would be overwritten."""
