"""One writer per zoo: the writer lock (modelzoo/store/lock.py) and the orphan sweep of ZooWriter.

Before the lock, two `modelzoo generate` runs on one zoo both trained every model; the manifest of
the last commit listed its own shards, the other writer's stayed on disk unlisted, and a third
run crashed on them when an orphan's name sorted before its committed twin ("shard does not match
this zoo's spec"). These tests hold the lock in this process and run the second writer as a real
CLI process, so the refusal is checked end to end without racing two trainings.
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from modelzoo import open_zoo
from modelzoo.errors import StoreError
from modelzoo.run import generate
from modelzoo.spec import load_spec
from modelzoo.store import lock as lock_module
from modelzoo.store.lock import LOCK_FILE, WriterLock
from modelzoo.store.verify import verify_zoo
from modelzoo.store.writer import ZooWriter

ZOO = "tiny_tetris"  # the name of conftest's tiny spec


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelzoo.cli", *args], capture_output=True,
                          text=True, timeout=300,
                          env={**os.environ, "TQDM_DISABLE": "1", **(env or {})})  # fmt: skip


def snapshot(folder: Path) -> dict[str, tuple[int, int, str]]:
    """Every file's size, mtime and sha256 (what 'nothing written' compares)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns,
                                         hashlib.sha256(p.read_bytes()).hexdigest())
            for p in sorted(folder.rglob("*")) if p.is_file()}  # fmt: skip


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def write_lock(zoo: Path, **holder) -> Path:
    zoo.mkdir(parents=True, exist_ok=True)
    values = {"pid": dead_pid(), "host": socket.gethostname(), "started": "2020-01-01T00:00:00+00:00",
              "token": "a-writer-that-is-gone", "boot": lock_module._boot_id(), **holder}  # fmt: skip
    path = zoo / LOCK_FILE
    path.write_text(json.dumps(values))
    return path


def weights(zoo_dir: Path) -> np.ndarray:
    zoo = open_zoo(zoo_dir)
    return zoo.weights(zoo.model_ids)


def test_second_writer_is_refused_at_once_with_one_line(tiny_spec: Path, tmp_path: Path) -> None:
    store = tmp_path / "store"
    generate(load_spec(tiny_spec), store, executor="local", limit=3)
    zoo = store / ZOO
    before = snapshot(zoo)
    with WriterLock.acquire(zoo) as held:  # a first writer, alive: this test's process
        assert snapshot(zoo).keys() - before.keys() == {LOCK_FILE}
        done = cli("generate", str(tiny_spec), "--store", str(store), "--executor", "local")
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1, done.stderr
        assert lines[0].startswith(f"error: {zoo}: another modelzoo process is writing this folder")
        assert (
            f"pid {os.getpid()} on {socket.gethostname()}, since {held.holder.started}" in lines[0]
        )
        during = snapshot(zoo)
        del during[LOCK_FILE]
        assert during == before  # nothing written, nothing trained
    assert not (zoo / LOCK_FILE).exists()
    assert len(open_zoo(zoo)) == 3


def test_a_writer_in_the_same_process_is_refused_until_the_first_closes(
    tiny_spec: Path, tmp_path: Path
) -> None:
    zoo = tmp_path / ZOO
    with WriterLock.acquire(zoo):
        with pytest.raises(StoreError, match="this process already writes this zoo"):
            generate(load_spec(tiny_spec), tmp_path, executor="local", limit=3)
        assert [p.name for p in zoo.iterdir()] == [LOCK_FILE]
    assert not zoo.exists()  # the lock made the folder and took it away again
    generate(load_spec(tiny_spec), tmp_path, executor="local", limit=3)
    assert len(open_zoo(zoo)) == 3 and not (zoo / LOCK_FILE).exists()


def test_stale_lock_of_a_dead_writer_is_taken_over(tiny_spec: Path, tmp_path: Path) -> None:
    """Left by a writer killed before its first commit: a folder holding only the lock."""
    zoo = tmp_path / ZOO
    write_lock(zoo)
    generate(load_spec(tiny_spec), tmp_path, executor="local", limit=3)
    assert len(open_zoo(zoo)) == 3 and not (zoo / LOCK_FILE).exists()


def test_kill_9_leaves_a_stale_lock_the_next_writer_takes_over(
    tiny_spec: Path, tmp_path: Path
) -> None:
    store = tmp_path / "store"
    args = ("generate", str(tiny_spec), "--store", str(store), "--executor", "local")
    killed = cli(*args, env={"MODELZOO_CRASH_AT": "after-shard:2"})  # os._exit(137): no cleanup
    assert killed.returncode == 137
    zoo = store / ZOO
    stale = json.loads((zoo / LOCK_FILE).read_text())
    assert stale["host"] == socket.gethostname() and stale["pid"] != os.getpid()
    generate(load_spec(tiny_spec), store, executor="local")
    assert not (zoo / LOCK_FILE).exists()
    report = verify_zoo(zoo)
    assert report.ok and not report.notes, (report.problems, report.notes)
    assert sorted(open_zoo(zoo).model_ids) == list(range(10))


def test_lock_of_a_live_process_or_another_host_is_respected(
    tiny_spec: Path, tmp_path: Path
) -> None:
    zoo = tmp_path / ZOO
    path = write_lock(zoo, pid=os.getppid())  # alive: whoever started this test run
    with pytest.raises(StoreError, match=f"pid {os.getppid()} on .*since 2020-01-01"):
        generate(load_spec(tiny_spec), tmp_path, executor="local", limit=3)
    path = write_lock(zoo, host="another-host.example")  # its pid cannot be checked from here
    with pytest.raises(
        StoreError, match=f"another-host.example.*if that process is gone, delete {path}"
    ):
        generate(load_spec(tiny_spec), tmp_path, executor="local", limit=3)
    assert [p.name for p in zoo.iterdir()] == [LOCK_FILE]  # nothing written, the lock kept
    if lock_module._boot_id():  # Linux: a lock from before a reboot is stale whatever its pid
        write_lock(zoo, pid=os.getppid(), boot="an-earlier-boot")
        generate(load_spec(tiny_spec), tmp_path, executor="local", limit=3)
        assert len(open_zoo(zoo)) == 3 and not (zoo / LOCK_FILE).exists()


def test_an_unreadable_lock_is_taken_over_only_once_it_is_old(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    zoo.mkdir()
    (zoo / LOCK_FILE).write_text("")  # killed between creating the file and writing its JSON
    os.utime(zoo / LOCK_FILE, (1, 1))
    with WriterLock.acquire(zoo) as held:
        assert json.loads((zoo / LOCK_FILE).read_text())["token"] == held.holder.token
    assert not (zoo / LOCK_FILE).exists() and zoo.exists()  # a folder it did not create stays


def race_for_the_lock(zoo: Path) -> tuple[list[WriterLock], list[str]]:
    """Two threads call WriterLock.acquire at the same instant."""
    barrier, won, refused = threading.Barrier(2), [], []

    def take() -> None:
        barrier.wait()
        try:
            won.append(WriterLock.acquire(zoo))
        except StoreError as error:
            refused.append(str(error))

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return won, refused


def test_two_writers_taking_over_one_stale_lock_get_it_once(tmp_path: Path) -> None:
    zoo = tmp_path / "zoo"
    for _ in range(10):
        write_lock(zoo, pid=dead_pid())
        won, refused = race_for_the_lock(zoo)
        assert len(won) == 1 and len(refused) == 1, refused
        assert "already writes this zoo" in refused[0]
        won[0].release()
        assert not (zoo / LOCK_FILE).exists()


def test_a_thread_reading_a_lock_just_created_by_this_process_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race behind a flaky takeover under load: thread A has created the lock file but not
    yet returned; thread B reads it, sees this process's pid, and must judge it live (A holds it),
    not stale (it used to delete A's lock and take the zoo too)."""
    zoo = tmp_path / "zoo"
    real_create, seen = lock_module._create, []

    def create_then_race(path: Path, me) -> bool:
        made = real_create(path, me)
        if made and path.name == LOCK_FILE and not seen:
            seen.append("racing")
            with pytest.raises(StoreError, match="this process already writes this zoo"):
                WriterLock.acquire(zoo)
        return made

    monkeypatch.setattr(lock_module, "_create", create_then_race)
    first = WriterLock.acquire(zoo)
    assert seen and json.loads((zoo / LOCK_FILE).read_text())["token"] == first.holder.token
    first.release()
    assert not (zoo / LOCK_FILE).exists()


def test_a_lock_being_released_still_reads_as_live(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The other end of the same race: while release() has not yet deleted the file, a thread of
    this process must not judge it stale (it deleted the file between the owner's unlink and a
    third thread's fresh lock, and two threads held the zoo)."""
    zoo = tmp_path / "zoo"
    lock = WriterLock.acquire(zoo)
    real_read, seen = lock_module._read, []

    def read_then_race(path: Path):
        got = real_read(path)
        if not seen:
            seen.append("racing")
            with pytest.raises(StoreError, match="this process already writes this zoo"):
                WriterLock.acquire(zoo)
        return got

    monkeypatch.setattr(lock_module, "_read", read_then_race)
    lock.release()
    assert seen and not (zoo / LOCK_FILE).exists()


def test_lock_is_released_on_errors_and_when_a_writer_is_forgotten(
    tiny_spec: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zoo = tmp_path / ZOO
    generate(load_spec(tiny_spec), tmp_path, executor="local", limit=3)
    changed = load_spec(tiny_spec, ["training.lr=0.5"])
    with pytest.raises(StoreError, match="different spec"):  # raised inside ZooWriter.__init__
        generate(changed, tmp_path, executor="local")
    assert not (zoo / LOCK_FILE).exists()
    monkeypatch.setattr(ZooWriter, "close", lambda self: None)  # a caller that never closes
    generate(load_spec(tiny_spec), tmp_path, executor="local", limit=4)
    gc.collect()
    assert not (zoo / LOCK_FILE).exists()  # released when the writer went away
    assert len(open_zoo(zoo)) == 4


def test_orphans_of_a_second_writer_are_swept(tiny_spec: Path, tmp_path: Path) -> None:
    """What two unlocked writers left: each shard twice, the manifest listing one copy.

    Orphan names that sort before their committed twin made the next writer refuse the zoo (it
    adopted the orphan, then found the committed shard 'not matching'); after it, they were
    deleted. Both kinds must now be swept, and the zoo stay exactly as committed."""
    generate(load_spec(tiny_spec), tmp_path, executor="local")
    zoo = tmp_path / ZOO
    manifest = json.loads((zoo / "zoo.json").read_text())
    listed = [entry["path"] for entry in manifest["shards"]]
    expected = weights(zoo)
    orphans = []
    for number, relative in enumerate(listed):
        source = zoo / relative
        before = source.with_name(source.stem + f"-{number}.h5")  # "-" sorts before "."
        after = source.with_name(f"shard-9{number:06d}.h5")
        for orphan in (before, after):
            shutil.copyfile(source, orphan)
            orphans.append(orphan)
    assert len(verify_zoo(zoo).notes) == len(orphans)  # readers ignore them, verify notes them
    report = generate(load_spec(tiny_spec), tmp_path, executor="local")
    assert report.trained == 0
    assert not any(orphan.exists() for orphan in orphans)
    assert sorted(p.name for p in (zoo / "shards").iterdir()) == sorted(
        Path(p).name for p in listed
    )
    assert [e["path"] for e in json.loads((zoo / "zoo.json").read_text())["shards"]] == listed
    report = verify_zoo(zoo)
    assert report.ok and not report.notes, (report.problems, report.notes)
    np.testing.assert_array_equal(weights(zoo), expected)


def test_readers_ignore_the_lock(tiny_spec: Path, tmp_path: Path) -> None:
    generate(load_spec(tiny_spec), tmp_path, executor="local", limit=3)
    zoo = tmp_path / ZOO
    with WriterLock.acquire(zoo):
        holder = json.loads((zoo / LOCK_FILE).read_text())
        assert set(holder) == {"pid", "host", "started", "token", "boot"}
        assert holder["pid"] == os.getpid()
        assert len(open_zoo(zoo, verify=True)) == 3
        report = verify_zoo(zoo)
        assert report.ok and not report.notes, (report.problems, report.notes)
        done = cli("verify", str(zoo))
        assert done.returncode == 0 and done.stdout.startswith("ok: ") and not done.stderr
        assert LOCK_FILE not in done.stdout and "note" not in done.stdout
