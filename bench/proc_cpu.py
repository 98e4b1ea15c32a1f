"""CPU accounting from Linux /proc for the benchmarks: per process, per thread, kernel threads and irq,
the whole machine, and what creating a file costs in a folder (``bench/ingest_throughput.py``)."""

from __future__ import annotations

import os
import time
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    return cpu_seconds_of(Path(f"/proc/{pid}/stat"))


def thread_seconds(pid: int) -> dict[str, float]:
    """User + system CPU time so far of each thread of a process, by thread id (Linux /proc)."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out[task.name] = cpu_seconds_of(task / "stat")
        except OSError:
            continue  # exited meanwhile
    return out


def cpu_seconds_of(stat: Path) -> float:
    """User + system CPU seconds from a /proc stat file."""
    fields = stat.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def kernel_work() -> float:
    """CPU seconds so far of kernel threads (writeback, journal, block completion) and of irq/softirq."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if fields[1] == "2":  # a child of kthreadd
            total += int(fields[11]) + int(fields[12])
    cpu = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    return (total + int(cpu[5]) + int(cpu[6])) / os.sysconf("SC_CLK_TCK")


def cpu_snapshot(broker, *pids: int) -> tuple[float, ...]:
    """CPU seconds so far of the consumer process, the broker, this (publishing) process, the whole machine,
    then the clock, then kernel threads + irq/softirq."""
    me = os.times()
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    # user, system, irq, softirq, steal: not idle, not iowait, not niced (other people's background jobs)
    busy = sum(int(x) for i, x in enumerate(fields[:8]) if i not in (1, 3, 4)) / os.sysconf("SC_CLK_TCK")
    threads = {}
    for pid in pids:
        threads.update(thread_seconds(pid))
    return (sum(cpu_seconds(pid) for pid in pids), cpu_seconds(broker.proc.pid), me.user + me.system, busy,
            time.monotonic(), kernel_work(), threads)


def print_cpu(phase: str, consumer: str, before: tuple, after: tuple, n: int) -> float:
    """Print CPU milliseconds per case of the consumer, the broker, the publisher, the kernel's threads and
    interrupts and the machine in one phase; return the phase's own CPU per case (all but the machine)."""
    c, b, p, m, _, k = ((a - z) / n * 1000 for a, z in zip(after[:6], before[:6]))
    cores = (after[3] - before[3]) / (after[4] - before[4])
    threads = sorted(((t - before[6].get(tid, 0.0)) / n * 1000 for tid, t in after[6].items()), reverse=True)
    print(f"  {phase} CPU per case: {consumer} {c:.2f} ms, broker {b:.2f} ms, publisher {p:.2f} ms, "
          f"kernel threads+irq {k:.2f} ms = {c + b + p + k:.2f} ms; "
          f"machine (not niced) {m:.2f} ms ({cores:.1f} of {os.cpu_count()} cores); "
          f"{consumer}'s threads " + " ".join(f"{t:.2f}" for t in threads if t >= 0.005), flush=True)
    return c + b + p + k


def file_creation_us(folder: Path, n: int = 300) -> float:
    """CPU microseconds to create one empty file in ``folder`` (a new folder; its files stay until the bench ends).

    The ingest creates a file per image. On ext4 without a journal (this build VM's disk) the
    kernel does not reuse an inode freed in the last minute (or six, while its inode table block
    is dirty): each new file's inode is searched for past every such one of its block group
    (``recently_deleted`` in ``fs/ext4/ialloc.c``). After the test suite or a previous bench has
    deleted thousands of files nearby, that costs 100-400 us per file instead of 10-20, up to a
    third of the ingest's CPU; a journalled ext4, as a centre's, never does this search. The bench
    flags its data folder ``chattr +T`` so that each run's store lands in a block group of its own
    (ext4's Orlov allocator spreads such a folder's subfolders as it does top-level ones): 163 -> ~40
    us per file right after a previous run.
    """
    folder.mkdir()
    t0 = time.thread_time()
    for i in range(n):
        os.close(os.open(folder / f"f{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    return (time.thread_time() - t0) / n * 1e6
