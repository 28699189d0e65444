"""The edge index's HNSW graph, built in a child process and swapped in: never on the request path.

Why a process: ``EdgeShard.optimize()`` (qdrant-edge-py 0.9.0) holds the Python GIL for the
whole build (minutes at 100,000 chunks), so on a thread it would stall every search and the
event loop too. Instead, once writes have paused (``idle_s``) and enough points were written
since the last build (``min_points``), or as soon as ``tail_points`` were written since the last
build even while writes go on (so that a long ingest, which the embedding model paces at tens of
chunks per second, never leaves more than about that many points to exact search):

1. under the index lock: flush, copy the shard directory to ``<shard>.build``, and from then on
   keep a journal of every update applied to the live shard;
2. a child process (``python -m ragstream_embedder.edge_build``, lower CPU priority) loads the
   copy and runs ``optimize()``: HNSW graphs, merged segments, deletions vacuumed;
3. under the index lock: the live shard is closed and renamed ``<shard>.old``, the copy takes its
   place, the journal is replayed onto it, it is flushed, and ``<shard>.old`` is removed.

Searches and writes go on against the live shard during (2), which is nearly all of the time;
(1) and (3) pause them for the copy and the swap. A build indexes only what is new: the graphs of
segments built before are kept (the index allows several segments, see ``edge_index``), and a
search runs HNSW on the indexed segments and an exact scan over the small unindexed tail.
Crash-safe: ``<shard>.old`` present on open
means a swap did not finish, so it is the truth and is put back; a ``<shard>.build`` left over
is discarded. The child dies with its parent.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Protocol

import structlog

log = structlog.get_logger(__name__)

BUILD_SUFFIX = ".build"
OLD_SUFFIX = ".old"
_PR_SET_PDEATHSIG = 1


def recover(shard: Path) -> None:
    """Undo what an interrupted build left next to ``shard`` (before the shard is opened)."""
    old = shard.with_name(shard.name + OLD_SUFFIX)
    if old.exists():  # the swap did not finish: the old shard (its WAL included) is the truth
        if shard.exists():
            shutil.rmtree(shard)
        old.rename(shard)
        log.warning("index.build_swap_undone", shard=str(shard))
    shutil.rmtree(shard.with_name(shard.name + BUILD_SUFFIX), ignore_errors=True)


class Buildable(Protocol):
    """What the builder needs of the index: the copy and the swap, both under its lock."""

    def copy_for_build(self, target: Path) -> None: ...

    def swap_in(self, built: Path) -> None: ...

    def abandon_build(self) -> None: ...


class BackgroundBuilder:
    """Decides when to build, runs the child process, and asks the index to swap the result in.

    ``notify(points)`` after each write (``points`` written or deleted); ``request()`` builds as
    soon as possible; ``wait_idle()`` blocks until nothing is due or running (tests, benchmarks).
    """

    def __init__(
        self,
        index: Buildable,
        shard: Path,
        *,
        idle_s: float,
        min_points: int,
        tail_points: int | None = None,
        nice: int = 10,
    ) -> None:
        self._index = index
        self._shard = shard
        self._idle_s = idle_s
        self._min_points = min_points
        self._tail_points = tail_points
        self._nice = nice
        self._lock = threading.Condition()
        self._unbuilt = 0
        self._requested = False
        self._last_write = 0.0
        self._stopping = False
        self._child: subprocess.Popen[bytes] | None = None
        self.running = False
        self.builds = 0  # finished attempts, swapped in or not
        self.swaps = 0  # builds swapped in
        self._thread = threading.Thread(target=self._loop, name="index-builder", daemon=True)
        self._thread.start()

    def notify(self, points: int) -> None:
        with self._lock:
            self._unbuilt += points
            self._last_write = time.monotonic()
            self._lock.notify_all()

    def request(self) -> None:
        """Build now, whatever was written and however recently."""
        with self._lock:
            self._requested = True
            self._lock.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Whether every requested build finished within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._requested or self.running:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(left)
            return True

    def stop(self) -> None:
        """Stop building; a child still running is killed and its copy discarded."""
        with self._lock:
            self._stopping = True
            child = self._child
            self._lock.notify_all()
        if child is not None:
            child.kill()
        self._thread.join()

    def _due(self) -> bool:
        if self._requested:
            return True
        if self._tail_points is not None and self._unbuilt >= self._tail_points:
            return True  # a long ingest: build what is there, writes go on meanwhile
        return self._unbuilt >= self._min_points and time.monotonic() - self._last_write >= self._idle_s

    def _next(self) -> bool:
        """Wait until a build is due (True) or the builder stops (False)."""
        with self._lock:
            while not self._stopping:
                if self._due():
                    self._unbuilt = 0
                    self.running = True
                    return True
                wait = (
                    self._idle_s - (time.monotonic() - self._last_write) if self._unbuilt >= self._min_points else None
                )
                self._lock.wait(max(wait, 0.01) if wait is not None else None)
            return False

    def _loop(self) -> None:
        while self._next():
            try:
                self._build()
            except Exception as exc:  # the live shard keeps serving; the next writes try again
                if not self._stopping:  # else: killed on purpose by stop()
                    log.error("index.build_failed", error=str(exc), error_type=type(exc).__name__)
                self._index.abandon_build()
            finally:
                with self._lock:
                    self.running = False
                    self._requested = False
                    self.builds += 1
                    self._child = None
                    self._lock.notify_all()

    def _build(self) -> None:
        started = time.perf_counter()
        target = self._shard.with_name(self._shard.name + BUILD_SUFFIX)
        shutil.rmtree(target, ignore_errors=True)
        self._index.copy_for_build(target)
        copied = time.perf_counter()
        with self._lock:
            if self._stopping:
                raise RuntimeError("stopping")
            self._child = subprocess.Popen(
                [sys.executable, "-m", "ragstream_embedder.edge_build", str(target), str(os.getpid()), str(self._nice)],
                stdout=subprocess.PIPE,
            )
            child = self._child
        out, _ = child.communicate()
        if child.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(f"the build process exited with {child.returncode}")
        built = time.perf_counter()
        if out.strip() != b"optimized":
            self._index.abandon_build()
            shutil.rmtree(target, ignore_errors=True)
            return
        self._index.swap_in(target)
        self.swaps += 1
        log.info(
            "index.built",
            copy_ms=round((copied - started) * 1000),
            build_ms=round((built - copied) * 1000),
            swap_ms=round((time.perf_counter() - built) * 1000),
        )


def _die_with_parent(parent: int) -> None:
    """Linux: get SIGKILL when the parent dies (optimize() holds the GIL: no thread could watch)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def main(argv: list[str] | None = None) -> int:
    """Child process: optimise the shard copy at argv[0]; prints ``optimized`` or ``unchanged``."""
    import qdrant_edge

    path, parent, nice = (argv if argv is not None else sys.argv[1:])[:3]
    _die_with_parent(int(parent))
    os.nice(int(nice))
    shard = qdrant_edge.EdgeShard.load(path)
    optimized = shard.optimize()
    shard.flush()
    shard.close()
    sys.stdout.write("optimized" if optimized else "unchanged")
    return 0


if __name__ == "__main__":
    sys.exit(main())
