"""Where a science command's results go: a new folder, checked before any work starts.

train-ae, probe, fidelity and sample each write one folder (``--out``), filled under a sibling
work folder and renamed into place at the end. A destination that cannot become that folder must
be refused in one line *before* an hour of training, not by a traceback after it; one set of
rules here, so every command refuses the same things in the same words. ``claimed`` is the
other half, the same for all four: the work folder ``OUT.partial`` held under the store's writer
lock (a second run on one --out is refused, a killed one's is taken over) and renamed into place.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import ModelZooError
from .store.lock import LOCK_FILE, WriterLock

# what a command adds to the folder's name for its work folder ("NAME.partial")
WORK_SUFFIX_BYTES = len(".partial")
# in a work folder: the command filling it and whether it resumes, so another command on the
# same --out neither empties nor resumes it (a killed train-ae's hour of training is not a probe's
# leftovers), while a killed probe's or sample's leftovers are anyone's to clear
COMMAND_FILE = ".modelzoo-command"
_MARKERS = (COMMAND_FILE, COMMAND_FILE + ".new")  # the marker and its half-written successor


def resolved(out: str | Path) -> Path:
    """``out`` as the OS will read it once it exists: ``~`` expanded, the parent resolved (so
    ``missing/../run`` is ``./run``), the name itself kept (it may be a link to refuse)."""
    given = Path(out)
    return given.expanduser().parent.resolve() / given.name


def partial(out: Path) -> Path:
    """The work folder beside ``out`` that every science command fills, and resumes or clears."""
    return out.with_name(out.name + ".partial")


def new_folder(out: str | Path, *, allow_empty: bool = False, finished: str | None = None,
               flag: str = "--out") -> Path:  # fmt: skip
    """The absolute path to create for ``out``, after refusing what cannot become a new folder:
    a symlink (the final rename would replace the link, not fill its target), a file, an existing
    folder (an empty one only with ``allow_empty``, and not a mount point, which cannot be
    replaced), a name that is no name (``.``, ``..``), one too long for its work folder or not
    writable as UTF-8 (the Parquet files record it), or a place where no folder can be created
    (a file on the way, no permission, a read-only mount). ``finished``: the file that marks
    a completed result, named in the refusal of a folder that holds one.

    The parent is resolved first and every check is made on the result, so ``a/../b`` means
    ``./b`` without creating ``a/`` on the way (``mkdir -p`` would), as the OS will read it."""
    if str(out) == "":
        raise ModelZooError(f"{flag} '': name a new folder (e.g. runs/first)")
    given = Path(out)
    if given.name in ("", ".", ".."):
        raise ModelZooError(f"{flag} {given}: name a new folder (e.g. runs/first), not {given}")
    try:
        target = resolved(given)
        _check_target(target, given, allow_empty, finished, flag)
    except (OSError, RuntimeError) as error:  # name too long, symlink loop, unknown ~user
        reason = error.strerror if isinstance(error, OSError) and error.strerror else error
        raise ModelZooError(f"{flag} {given}: cannot be used ({reason})") from None
    return target


def _check_target(target: Path, given: Path, allow_empty: bool, finished: str | None,
                  flag: str) -> None:  # fmt: skip
    try:
        str(target).encode("utf-8")
    except UnicodeEncodeError:
        raise ModelZooError(f"{flag} {given}: the path is not valid UTF-8; choose a plain "
                            "name") from None  # fmt: skip
    if target.is_symlink():  # a dangling one too
        raise ModelZooError(f"{flag} {given}: is a symbolic link; choose a new folder")
    if target.exists():
        if not target.is_dir():
            raise ModelZooError(f"{flag} {given}: is a file; choose a new folder")
        if finished and (target / finished).is_file():
            raise ModelZooError(f"{flag} {given}: already exists and holds a finished run; choose "
                                "a new folder (a finished run is never overwritten)")  # fmt: skip
        if not allow_empty:
            raise ModelZooError(f"{flag} {given}: already exists; choose a new folder")
        if any(target.iterdir()):
            raise ModelZooError(f"{flag} {given}: exists and is not an empty folder")
        if os.path.ismount(target):
            raise ModelZooError(f"{flag} {given}: is a mount point, which cannot be replaced; "
                                "name a new folder inside it")  # fmt: skip
    ancestor = target.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ModelZooError(f"{flag} {given}: cannot be created ({ancestor} is a file, not a folder)")
    try:
        limit = os.pathconf(ancestor, "PC_NAME_MAX")
    except (OSError, ValueError):
        limit = 255
    if len(os.fsencode(target.name)) + WORK_SUFFIX_BYTES > limit:
        raise ModelZooError(f"{flag} {given}: the folder name is too long (at most "
                            f"{limit - WORK_SUFFIX_BYTES} bytes here)")  # fmt: skip
    work = partial(target)
    if work.is_symlink() or (work.exists() and not work.is_dir()):
        raise ModelZooError(f"{flag} {given}: {work} is in the way (a symbolic link or a file, not "
                            "an interrupted run's folder); remove it or choose another name")  # fmt: skip
    try:  # the permission bits do not tell everything (read-only mounts, /proc): try it
        os.rmdir(tempfile.mkdtemp(prefix=".modelzoo-out-check-", dir=ancestor))
    except OSError as error:
        raise ModelZooError(f"{flag} {given}: cannot be created in {ancestor} "
                            f"({error.strerror or error})") from None  # fmt: skip


@contextlib.contextmanager
def claimed(out: Path, command: str, *, keep_on_failure: bool,
            allow_empty: bool = False) -> Iterator[Path]:  # fmt: skip
    """``partial(out)``, held for the block under the store's writer lock (a second process on
    the same --out is refused naming this one; a ``kill -9``'s lock is taken over), then renamed
    to ``out`` (over an empty folder there with ``allow_empty``). ``keep_on_failure``: the
    command resumes, so a failure or an interrupt keeps the work folder and the same command
    continues it; otherwise the folder is removed, and one a killed run left is emptied first.
    A resumable run of another command, or files no command claims, are refused, never emptied."""
    work = partial(out)
    try:
        lock = WriterLock.acquire(work)
    except OSError as error:
        raise ModelZooError(f"--out {out}: cannot create {work}: {error.strerror or error}") from None
    try:
        resume = _resumes(work, out, command, keep_on_failure, allow_empty)
    except BaseException:
        lock.release()
        raise
    try:
        if not resume:
            for stale in work.iterdir():
                if stale.name != LOCK_FILE:
                    shutil.rmtree(stale) if stale.is_dir() and not stale.is_symlink() else stale.unlink()
        _mark(work, command, keep_on_failure)
        yield work
        try:
            os.replace(work, out)  # still locked while it moves: nobody empties it under us
        except OSError as error:  # something else created a non-empty OUT meanwhile
            raise ModelZooError(f"--out {out}: cannot be put in place ({error.strerror}); "
                                "something else wrote there while this ran") from None  # fmt: skip
        _remove(out, (LOCK_FILE, *_MARKERS))
    except BaseException:
        if not work.is_dir():  # interrupted just after the rename
            _remove(out, (LOCK_FILE, *_MARKERS))
        elif keep_on_failure and _previous_run(work) is None:
            _remove(work, _MARKERS)  # nothing to resume: the lock's release takes the folder along
        lock.release()
        if not keep_on_failure:
            shutil.rmtree(work, ignore_errors=True)
        raise
    lock.release()


def _resumes(work: Path, out: Path, command: str, keep_on_failure: bool, allow_empty: bool) -> bool:
    """Whether ``command`` continues what ``work`` holds; one line for what it must not touch."""
    previous = _previous_run(work)
    resume = keep_on_failure and previous == (command, True)
    if previous is not None and previous[1] and not resume:
        if previous[0] is None:
            raise ModelZooError(f"--out {out}: {work} holds files no modelzoo command claims (no "
                                f"readable {COMMAND_FILE}); remove it or choose another --out")  # fmt: skip
        raise ModelZooError(f"--out {out}: {work} holds an interrupted `modelzoo {previous[0]}` "
                            "run; resume it with that command, remove it, or choose another --out")  # fmt: skip
    if out.exists() and not (allow_empty and out.is_dir() and not any(out.iterdir())):
        raise ModelZooError(f"--out {out}: already exists; choose a new folder")  # made meanwhile
    return resume


def _previous_run(work: Path) -> tuple[str | None, bool] | None:
    """(command, resumable) of the run that left files in ``work``; None when it holds none
    (a fresh folder, or a run killed before writing anything); (None, True) for files without a
    readable marker, which nothing may empty."""
    if not {path.name for path in work.iterdir()} - {LOCK_FILE, *_MARKERS}:
        return None
    try:
        record = json.loads((work / COMMAND_FILE).read_text(encoding="utf-8"))
        return str(record["command"]), bool(record["resumable"])
    except (OSError, ValueError, KeyError, TypeError):
        return None, True


def _mark(work: Path, command: str, resumable: bool) -> None:
    """Write the marker whole or not at all (a kill -9 must not leave an empty one)."""
    new = work / _MARKERS[1]
    new.write_text(json.dumps({"command": command, "resumable": resumable}) + "\n", encoding="utf-8")
    os.replace(new, work / COMMAND_FILE)


def _remove(folder: Path, names: tuple[str, ...]) -> None:
    for name in names:
        (folder / name).unlink(missing_ok=True)
