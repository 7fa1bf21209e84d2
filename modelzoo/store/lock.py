"""One writer per zoo: a lock file in the zoo folder that names its holder.

Two ``modelzoo generate`` processes on one zoo would both train every missing model, and the
manifest of whichever committed last would orphan the other's shards. So a writer takes
``<zoo>/writer.lock`` before it touches anything: created with ``O_CREAT | O_EXCL`` (atomic on
local file systems and NFSv3+), holding JSON ``{pid, host, started, token, boot}``. A second
writer that finds it refuses at once with one line naming the holder. The lock is released by
``release()`` (ZooWriter.close, also on exceptions) and, as a fallback, when the writer is garbage
collected or the interpreter exits. A ``kill -9`` leaves it behind; the next writer takes it over
when it can prove the holder is gone: same host (and same boot, where Linux says which) and the
pid no longer runs. A lock from another host cannot be checked from here: the writer refuses and
says which file to delete once that process is known to be gone.

Readers never take or read the lock: a zoo is valid at every instant, locked or not.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import StoreError

LOCK_FILE = "writer.lock"
GUARD_SUFFIX = ".takeover"  # held for the few microseconds a stale lock is being removed
UNREADABLE_GRACE_S = 5.0  # a lock file still empty after this long was left by a killed writer
_ATTEMPTS = 50

_held_tokens: set[str] = set()  # locks this process holds now (to judge a lock naming our pid)
_held_guard = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who holds a zoo's writer lock."""

    pid: int
    host: str
    started: str
    token: str
    boot: str = ""

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, since {self.started}"


def _boot_id() -> str:
    """This boot of the machine (Linux), so a lock from before a reboot is known to be stale."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _pid_alive(pid: int) -> bool:
    """Whether a process with this pid runs on this machine (a zombie does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    except OSError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # not Linux, or it just ended: the next attempt sees
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _read(path: Path) -> Holder | None:
    """The holder named by a lock file; None while it is being written or when it is garbage."""
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
        return Holder(int(values["pid"]), str(values["host"]), str(values["started"]),
                      str(values["token"]), str(values.get("boot", "")))  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _age(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except OSError:
        return 0.0


class WriterLock:
    """The writer lock of one zoo folder, held from :meth:`acquire` until :meth:`release`."""

    def __init__(self, zoo_dir: Path, holder: Holder, created: list[Path]) -> None:
        self.path = Path(zoo_dir) / LOCK_FILE
        self.holder = holder
        self._created = created  # folders acquire() made (zoo folder first), removed if empty
        self._released = False

    # ------------------------------------------------------------------ taking it
    @classmethod
    def acquire(cls, zoo_dir: Path) -> WriterLock:
        """Take the lock of ``zoo_dir`` (created if missing) or raise StoreError naming its holder."""
        zoo_dir = Path(zoo_dir)
        created = [p for p in (zoo_dir, *zoo_dir.absolute().parents) if not p.exists()]
        zoo_dir.mkdir(parents=True, exist_ok=True)
        path = zoo_dir / LOCK_FILE
        me = Holder(os.getpid(), socket.gethostname(),
                    dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), uuid.uuid4().hex,
                    _boot_id())  # fmt: skip
        with _held_guard:  # before the file exists: a thread of this process reading it at
            _held_tokens.add(me.token)  # once must find it live, not stale, and not delete it
        try:
            for _ in range(_ATTEMPTS):
                if _create(path, me):
                    return cls(zoo_dir, me, created)
                holder = _read(path)
                if holder is None and _age(path) < UNREADABLE_GRACE_S:
                    time.sleep(0.02)  # another writer is writing it right now
                    continue
                if holder is not None and not _is_stale(holder, me):
                    raise StoreError(_refusal(zoo_dir, holder, me))
                _remove_stale(path, holder)
            raise StoreError(f"{path}: could not take the writer lock: other writers keep taking "
                             "it; run one `modelzoo generate` per zoo")  # fmt: skip
        except BaseException:
            with _held_guard:
                _held_tokens.discard(me.token)
            _remove_empty(created)
            raise

    # ------------------------------------------------------------------ giving it back
    def release(self) -> None:
        """Delete the lock file if it is still ours (idempotent); remove the folders acquire()
        created for it when nothing else was written there (a run that failed before its first
        results leaves no trace)."""
        if self._released:
            return
        self._released = True
        current = _read(self.path)
        if current is not None and current.token == self.holder.token:
            self.path.unlink(missing_ok=True)
        with _held_guard:  # only once the file is gone: until then it must read as live
            _held_tokens.discard(self.holder.token)
        _remove_empty(self._created)

    @property
    def released(self) -> bool:
        return self._released

    def __enter__(self) -> WriterLock:
        return self

    def __exit__(self, *_: object) -> None:
        self.release()


def _create(path: Path, me: Holder) -> bool:
    """Create the lock file atomically with our JSON; False if it exists."""
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    except FileNotFoundError:  # a releasing writer removed the folder it had made: make it again
        path.parent.mkdir(parents=True, exist_ok=True)
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(asdict(me), handle)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    return True


def _is_stale(holder: Holder, me: Holder) -> bool:
    """True only when the holder is provably gone; a lock from another host never is."""
    if holder.host != me.host:
        return False
    if holder.boot and me.boot and holder.boot != me.boot:
        return True  # written before this machine rebooted
    if holder.pid == me.pid:
        with _held_guard:  # ours: live if a lock object of this process still holds it
            return holder.token not in _held_tokens
    return not _pid_alive(holder.pid)


def _refusal(zoo_dir: Path, holder: Holder, me: Holder) -> str:
    who = holder.describe()
    if holder.host == me.host and holder.pid == me.pid:
        return f"{zoo_dir}: this process already writes this zoo ({who}); close that writer first"
    if holder.host != me.host:
        return (f"{zoo_dir}: another modelzoo writer holds this zoo ({who}); if that process is "
                f"gone, delete {zoo_dir / LOCK_FILE}")  # fmt: skip
    return (f"{zoo_dir}: another modelzoo process is writing this folder ({who}); wait for it "
            "to finish or stop it, then run this command again")  # fmt: skip


def _remove_stale(path: Path, stale: Holder | None) -> None:
    """Delete a stale lock, unless another writer is taking it over at the same moment.

    Without the guard two writers could both judge the same lock stale, and the slower one would
    delete the lock the faster one has just created. The guard is itself a lock file naming a pid,
    so one left by a writer killed inside this function is removed the same way.
    """
    guard = path.with_name(path.name + GUARD_SUFFIX)
    me = Holder(os.getpid(), socket.gethostname(), "", "guard", _boot_id())
    if not _create(guard, me):
        other = _read(guard)
        if (other is None and _age(guard) >= UNREADABLE_GRACE_S) or (
            other is not None and other.pid != me.pid and _is_stale(other, me)
        ):
            guard.unlink(missing_ok=True)
        else:
            time.sleep(0.02)
        return
    try:
        current = _read(path)
        if current == stale:  # still the lock we judged stale (None: still the garbage one)
            path.unlink(missing_ok=True)
    finally:
        guard.unlink(missing_ok=True)


def _remove_empty(folders: list[Path]) -> None:
    """rmdir each folder, deepest first, stopping at the first that is not empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # not empty: something else lives there
            return
