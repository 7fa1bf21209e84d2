"""Finding dataset files, downloading them through torchvision, and explaining failures in one line.

torchvision's datasets raise assorted errors from deep inside (``RuntimeError("Dataset not
found...")``, ``URLError``, assertion errors on damaged files, multi-line mirror reports). A user
needs one sentence: which dataset, which folder, which file was expected, and what to do.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from modelzoo.errors import DataError

DATA_DIR_ENV = "MODELZOO_DATA_DIR"
DEFAULT_DATA_DIR = Path("~/.cache/modelzoo/data")
DOWNLOAD_TIMEOUT_S = 20.0  # per socket operation: an offline machine fails at once, a hung one soon

T = TypeVar("T")


def resolve_data_dir(data_dir: str | os.PathLike[str] | None) -> Path:
    """The configured folder, else ``$MODELZOO_DATA_DIR``, else ``~/.cache/modelzoo/data``."""
    chosen = data_dir if data_dir is not None else os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR
    return Path(chosen).expanduser().absolute()


@dataclass(frozen=True)
class DatasetFiles:
    """Where torchvision keeps one dataset: ``subdir`` under the data folder is the ``root`` handed
    to torchvision, ``expected`` lists what must exist there (relative to that root)."""

    title: str
    expected: tuple[str, ...]
    subdir: str = ""

    def root(self, data_dir: Path) -> Path:
        return data_dir / self.subdir if self.subdir else data_dir

    def missing(self, data_dir: Path) -> list[str]:
        """Expected entries that are absent, as paths relative to ``data_dir``."""
        root = self.root(data_dir)
        return [
            str(Path(self.subdir, entry)) for entry in self.expected if not (root / entry).exists()
        ]


def open_dataset(
    files: DatasetFiles, data_dir: Path, download: bool, factory: Callable[[Path, bool], T]
) -> T:
    """Call ``factory(root, download)`` (a torchvision dataset constructor) and turn every failure
    into a one-line :class:`DataError`.

    torchvision is only asked to download when an expected file is absent, so present files are
    never fetched again; the attempt runs under a short socket timeout.
    """
    missing = files.missing(data_dir)
    if missing and not download:
        raise DataError(
            f"{files.title} not found under {data_dir} (expected {missing[0]}); downloading is "
            "off. Put the files there or pass --data-dir DIR."
        )
    if missing:
        try:
            with network_timeout(DOWNLOAD_TIMEOUT_S):
                return factory(files.root(data_dir), True)
        except Exception as error:
            if files.missing(data_dir):
                raise DataError(
                    f"{files.title} not found under {data_dir} (expected {missing[0]}); download "
                    f"failed: {short_reason(error)}. Put the files there or pass --data-dir DIR."
                ) from None
            raise _unreadable(files, data_dir, error) from None
    try:
        return factory(files.root(data_dir), False)
    except Exception as error:
        raise _unreadable(files, data_dir, error) from None


def _unreadable(files: DatasetFiles, data_dir: Path, error: Exception) -> DataError:
    reason = short_reason(error)
    if "corrupted" in reason:  # torchvision's wording for a failed MD5 check
        reason = "a file fails torchvision's checksum check: damaged, or from another release"
    return DataError(
        f"{files.title} files under {data_dir} cannot be read ({reason}); replace them, or delete "
        "them to download again."
    )


def short_reason(error: BaseException) -> str:
    """The last non-empty line of an error (torchvision puts the root cause there), shortened."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    reason = lines[-1] if lines else type(error).__name__
    return reason if len(reason) <= 160 else reason[:157] + "..."


@contextlib.contextmanager
def network_timeout(seconds: float) -> Iterator[None]:
    """Bound every socket operation while downloading (torchvision's ``urlopen`` has no timeout,
    so a network that drops packets instead of refusing would otherwise hang for minutes)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)
