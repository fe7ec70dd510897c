"""What the kernel knows about a server: CPU time and memory from /proc, and the machine itself.

A server is measured as its whole process tree (the spawned process and every descendant), so a
server that forks a worker is charged for both.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PROC = Path("/proc")


def _stat_fields(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (which may hold spaces and parentheses)."""
    raw = (_PROC / str(pid) / "stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def process_tree(root: int) -> list[int]:
    """root and all its living descendants."""
    children: dict[int, list[int]] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(_stat_fields(int(entry.name))[1])
        except (OSError, ValueError, IndexError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    tree = [root]
    for pid in tree:
        tree.extend(children.get(pid, ()))
    return tree


def threads(pid: int) -> list[int]:
    """Thread ids of a process (empty once it has gone)."""
    try:
        return [int(entry.name) for entry in (_PROC / str(pid) / "task").iterdir()]
    except OSError:
        return []


def cpu_seconds(root: int) -> dict[int, float]:
    """User + system CPU seconds of each process in the tree, keyed by pid."""
    seconds: dict[int, float] = {}
    for pid in process_tree(root):
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        seconds[pid] = (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    return seconds


def cpu_spent(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds spent between two cpu_seconds() readings (a process born between them counts whole)."""
    return sum(value - before.get(pid, 0.0) for pid, value in after.items())


def machine_busy_seconds() -> float:
    """CPU seconds all CPUs together have spent not idle since boot (from /proc/stat)."""
    fields = (_PROC / "stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


def _status_kib(pid: int, key: str) -> int:
    for line in (_PROC / str(pid) / "status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def memory_mib(root: int, key: str) -> float:
    """A /proc/<pid>/status memory field (VmRSS, VmHWM) summed over the tree, in MiB."""
    total = 0
    for pid in process_tree(root):
        try:
            total += _status_kib(pid, key)
        except OSError:
            continue
    return total / 1024


def machine() -> dict[str, str]:
    """The facts a reader needs to compare these numbers with their own."""
    model = "unknown"
    try:
        for line in (_PROC / "cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        memory = f"{_meminfo_kib('MemTotal') / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError):
        memory = "unknown"
    try:
        load = " ".join((_PROC / "loadavg").read_text().split()[:3])
    except OSError:
        load = "unknown"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "CPU model": model,
        "memory": memory,
        "Python": f"{platform.python_implementation()} {platform.python_version()}",
        "kernel": platform.release(),
        "load average before the run (1/5/15 min)": load,
    }


def _meminfo_kib(key: str) -> int:
    for line in (_PROC / "meminfo").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise ValueError(key)
