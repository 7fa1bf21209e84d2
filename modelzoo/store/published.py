"""Published zoos: archives opened through a cache, ``SHA256SUMS``, and caches kept out of zoos.

A published zoo is an ordinary zoo folder with a few more files (card, Croissant, report,
``SHA256SUMS``), or a ``.tar.gz`` / ``.tar.zst`` archive of such a folder. Why it looks like this:

* An archive is unpacked once into ``$MODELZOO_CACHE/archives/<sha256 of the archive>/`` and read
  from there, so every reader (``open_zoo``, ``verify``, the dataset API) sees a plain folder.
  Before anything is written every member is checked: only regular files and folders with relative
  paths that stay inside; absolute paths, ``..``, links and devices are refused with one line and
  nothing is unpacked. Unpacking goes to a temporary folder inside the cache that is renamed when
  complete, so a killed unpack never looks like a cached zoo.
* A published zoo is read-only: what a reader caches (layer statistics) goes to
  ``$MODELZOO_CACHE/zoos/<fingerprint>/`` when the zoo folder is published (it has
  ``SHA256SUMS``), lies in the archive cache, or cannot be written. The fingerprint is the spec
  fingerprint and every shard's sha256, so two copies of one zoo share their cache.
* ``SHA256SUMS`` is the format ``sha256sum -c`` reads (``<hex>  <path>``), over every file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path, PurePosixPath

from ..errors import StoreError
from . import format as fmt

SUMS_FILE = "SHA256SUMS"
ARCHIVE_SUFFIXES = {".tar.gz": "gz", ".tgz": "gz", ".tar.zst": "zst", ".tar.zstd": "zst"}
CACHE_ENV = "MODELZOO_CACHE"


def cache_root() -> Path:
    """``$MODELZOO_CACHE``, else ``~/.cache/modelzoo``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "modelzoo"


def archive_kind(path: Path) -> str | None:
    """ "gz" or "zst" when ``path`` is named like a zoo archive, else None."""
    name = path.name.lower()
    return next((kind for suffix, kind in ARCHIVE_SUFFIXES.items() if name.endswith(suffix)), None)


def resolve_zoo(path: str | Path) -> Path:
    """The folder to read for ``path``: the folder itself, or an archive's unpacked cache copy."""
    path = Path(path)
    kind = archive_kind(path)
    if kind is None or not path.is_file():
        return path
    digest = fmt.sha256_file(path)
    target = cache_root() / "archives" / digest[:32]
    if not target.is_dir():
        _unpack(path, kind, target)
    return _zoo_folder(path, target)


def _zoo_folder(archive: Path, unpacked: Path) -> Path:
    if (unpacked / fmt.MANIFEST).is_file():
        return unpacked
    inner = [p for p in unpacked.iterdir() if p.is_dir() and (p / fmt.MANIFEST).is_file()]
    if len(inner) != 1:
        raise StoreError(
            f"{archive}: not a zoo archive (expected {fmt.MANIFEST} at the top or in one folder)"
        )
    return inner[0]


def check_member(archive: Path, member: tarfile.TarInfo) -> None:
    """Refuse a member that is not a plain file or folder strictly inside the unpack folder."""
    name = member.name
    parts = PurePosixPath(name).parts
    if not name or name.startswith(("/", "\\")) or "\\" in name or (parts and ":" in parts[0]):
        raise StoreError(f"{archive}: member {name!r} has an absolute path; refusing to unpack")
    if ".." in parts:
        raise StoreError(f"{archive}: member {name!r} escapes the folder (..); refusing to unpack")
    if not (member.isreg() or member.isdir()):
        kind = "a link" if member.issym() or member.islnk() else "a device or special file"
        raise StoreError(
            f"{archive}: member {name!r} is {kind} (only files and folders are allowed); "
            "refusing to unpack"
        )


def _unpack(archive: Path, kind: str, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.parent / f".{target.name}.{os.getpid()}{fmt.TMP_SUFFIX}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        source = archive
        if kind == "zst":
            source = staging / ".archive.tar"
            _decompress_zstd(archive, source)
        try:
            with tarfile.open(source, "r:*") as tar:
                members = tar.getmembers()
                for member in members:
                    check_member(archive, member)
                tar.extractall(staging, members=members, filter="data")
        except (tarfile.TarError, OSError, EOFError) as error:
            detail = " ".join(str(error).split())  # one line, whatever tarfile says
            raise StoreError(f"{archive}: unreadable archive: {detail}") from None
        if kind == "zst":
            source.unlink()
        try:
            os.rename(staging, target)
        except OSError:
            if not target.is_dir():  # another reader unpacking the same archive won the race
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _decompress_zstd(archive: Path, out: Path) -> None:
    try:
        import zstandard
    except ImportError:
        raise StoreError(
            f"{archive}: reading .tar.zst needs the zstandard package (pip install zstandard)"
        ) from None
    try:
        with open(archive, "rb") as src, open(out, "wb") as dst:
            zstandard.ZstdDecompressor().copy_stream(src, dst)
    except zstandard.ZstdError as error:
        raise StoreError(f"{archive}: unreadable archive: {' '.join(str(error).split())}") from None


# ---------------------------------------------------------------------------- read-only zoos
def zoo_fingerprint(manifest: dict) -> str:
    """Identity of a zoo's content: its spec fingerprint and the sha256 of every shard."""
    content = [manifest.get("spec_fingerprint"), sorted(s["sha256"] for s in manifest["shards"])]
    return hashlib.sha256(json.dumps(content).encode()).hexdigest()[:32]


def is_read_only(zoo_dir: Path) -> bool:
    """A published zoo (``SHA256SUMS``), an archive's cache copy, or a folder we cannot write."""
    zoo_dir = Path(zoo_dir)
    archives = (cache_root() / "archives").resolve()
    resolved = zoo_dir.resolve()
    return (
        (zoo_dir / SUMS_FILE).is_file()
        or archives in resolved.parents
        or not os.access(zoo_dir, os.W_OK)
    )


def cache_file(zoo_dir: Path, manifest: dict, name: str) -> Path:
    """Where a reader keeps the cache file ``name`` of a zoo: beside it when the zoo is a working
    (writable, unpublished) folder, else under ``$MODELZOO_CACHE/zoos/<fingerprint>/``."""
    if not is_read_only(zoo_dir):
        return Path(zoo_dir) / name
    folder = cache_root() / "zoos" / zoo_fingerprint(manifest)
    with contextlib.suppress(OSError):
        folder.mkdir(parents=True, exist_ok=True)
    return folder / name


# ---------------------------------------------------------------------------- SHA256SUMS
def write_sums(folder: Path) -> Path:
    """Write ``SHA256SUMS`` over every file of ``folder`` (sorted paths, ``sha256sum`` format)."""
    folder = Path(folder)
    lines = [
        f"{fmt.sha256_file(p)}  {p.relative_to(folder).as_posix()}"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != SUMS_FILE
    ]
    fmt.atomic_write_bytes(folder / SUMS_FILE, ("\n".join(lines) + "\n").encode())
    return folder / SUMS_FILE


def check_sums(folder: Path) -> tuple[list[str], list[str]]:
    """(problems, notes) of ``folder/SHA256SUMS``: every listed file present and unchanged;
    files it does not list are notes (a reader's cache, say), not damage."""
    folder = Path(folder)
    problems: list[str] = []
    listed: set[str] = set()
    try:
        text = (folder / SUMS_FILE).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        return [f"{SUMS_FILE}: unreadable ({error})"], []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        digest, sep, relative = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            problems.append(f"{SUMS_FILE}: line {number}: expected '<sha256>  <path>'")
            continue
        try:
            target = fmt.safe_member(folder, relative)
        except StoreError:
            problems.append(f"{SUMS_FILE}: line {number}: {relative!r} escapes the zoo folder")
            continue
        listed.add(relative)
        if not target.is_file():
            problems.append(f"{relative}: listed in {SUMS_FILE} but missing")
        elif fmt.sha256_file(target) != digest:
            problems.append(
                f"{relative}: sha256 differs from {SUMS_FILE} (file changed or damaged)"
            )
    notes = [
        f"{p.relative_to(folder).as_posix()}: not listed in {SUMS_FILE}"
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != SUMS_FILE and p.relative_to(folder).as_posix() not in listed
    ]
    return problems, notes
