"""A watchdog for the local Ray cluster of a `--workers` run: when the driver dies without
shutting Ray down (kill -9, an OOM kill), it kills every process of that cluster.

Ray starts its node processes (gcs_server, raylet, the dashboard, ...) from the driver, and
the raylet starts the agents and workers; none of them dies with the driver, and some ignore
SIGTERM. So the driver starts this small process (no Ray, no torch imported) with the node's
PIDs; it polls its parent, and once the parent is gone it SIGKILLs the node processes and all
their descendants (the tree is read from /proc before the first kill, so nothing is lost to
reparenting). A PID is killed only if its start time is the one recorded for it, so a PID
reused by an unrelated process is never touched.

    python -m rsp_probe.runio.ray_watchdog PARENT_PID NODE_PID [NODE_PID ...]
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

POLL_S = 0.5


def _stat(pid: int) -> tuple[int, int] | None:
    """(parent PID, start time in clock ticks) of a live process, else None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rpartition(")")[2].split()  # after the command name, which may hold spaces
    return int(fields[1]), int(fields[19])


def process_tree(roots: list[int]) -> dict[int, int]:
    """{pid: start time} of `roots` and all their live descendants."""
    parents, starts = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (found := _stat(int(entry.name))) is not None:
            parents[int(entry.name)], starts[int(entry.name)] = found
    tree, frontier = {}, [pid for pid in roots if pid in starts]
    while frontier:
        pid = frontier.pop()
        if pid not in tree:
            tree[pid] = starts[pid]
            frontier.extend(child for child, parent in parents.items() if parent == pid)
    return tree


def _still_running(known: dict[int, int]) -> dict[int, int]:
    return {pid: start for pid, start in known.items()
            if (found := _stat(pid)) is not None and found[1] == start}


def kill_tree(known: dict[int, int], rounds: int = 3) -> None:
    """SIGKILL the known processes and their descendants; again for processes started while
    we were killing."""
    for _ in range(rounds):
        tree = {**_still_running(known), **process_tree(list(_still_running(known)))}
        if not tree:
            return
        for pid, start in tree.items():
            found = _stat(pid)
            if found is not None and found[1] == start:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        known = tree
        time.sleep(0.2)


def watch(parent: int, roots: list[int]) -> None:
    """Keep the cluster's process tree up to date while the parent lives (a raylet that
    dies first would leave its agents to init, out of the tree), then kill it."""
    known = process_tree(roots)
    while os.getppid() == parent:
        known = {**_still_running(known), **process_tree(list(known))}
        time.sleep(POLL_S)
    kill_tree(known)


def start(node_pids: list[int]):
    """Start the watchdog for this process (the driver); returns its Popen."""
    import subprocess

    return subprocess.Popen(
        [sys.executable, "-m", "rsp_probe.runio.ray_watchdog", str(os.getpid()),
         *map(str, node_pids)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)  # a Ctrl-C of the terminal is the driver's to handle


def node_pids(ray) -> list[int]:
    """The PIDs of the processes of the local node this driver started."""
    node = ray._private.worker._global_node
    return [info.process.pid for infos in node.all_processes.values() for info in infos]


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    watch(int(sys.argv[1]), [int(pid) for pid in sys.argv[2:]])
