"""CPU seconds each part of the stack spent in a window, read from the operating system.

Wall-clock figures on a shared 2-core machine move with whatever else runs; CPU seconds per
process say where the stack's own work went (which stage, NATS, PostgreSQL) and move less.
"""

from __future__ import annotations

from pathlib import Path

import psutil

from ragstream_devstack.stack import Stack


def stack_roots(stack: Stack) -> dict[str, int]:
    """The root process of each part of the stack: the five services, nats-server, the postmaster."""
    roots = {name: process.pid for name, process in stack.processes.items()}
    if stack.nats is not None and stack.nats.process is not None:
        roots["nats"] = stack.nats.process.pid
    if stack.postgres is not None:
        data_dir = str(Path(stack.postgres.data_dir).resolve())
        for process in psutil.process_iter(["pid", "name", "cmdline"]):
            cmdline = process.info["cmdline"] or []
            if process.info["name"] == "postgres" and "-D" in cmdline and data_dir in cmdline:
                roots["postgres"] = process.info["pid"]
                break
    return roots


def cpu_seconds(roots: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds so far of each root and its descendants, reaped ones included."""
    totals: dict[str, float] = {}
    for name, pid in roots.items():
        try:
            root = psutil.Process(pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        total = 0.0
        for process in tree:
            try:
                times = process.cpu_times()
            except psutil.NoSuchProcess:  # a child that ended between listing and reading
                continue
            total += times.user + times.system
            if process is root:
                total += times.children_user + times.children_system
        totals[name] = total
    return totals


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds per part between two readings, largest first."""
    spent = {name: round(after[name] - before.get(name, 0.0), 3) for name in after}
    return dict(sorted(spent.items(), key=lambda item: -item[1]))
