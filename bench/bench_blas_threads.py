"""BLAS threads in the training child: one (today's setting) beside the library default.

``FitProcess`` caps the child's BLAS at one thread (threadpoolctl). This script
times ``fit_head`` through a ``FitProcess`` with ``blas_threads=1`` and with
``blas_threads=None`` (OpenBLAS's default: every core), on a quiet machine and
beside a busy one (one process keeping one core busy with numpy work, as the
camera and the embedding interpreter do beside a training), and reads the
child's CPU time from /proc. The child runs at niceness 10, as in the kiosk.

Sizes: 17 classes x 10 samples (the few-shot case) and 17 x 50.

Targets: on a quiet machine one thread is at most 10 % slower than the default;
beside other work it is not slower. Run: python bench/bench_blas_threads.py
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import time

import numpy as np

from kiosk.learn.fit_process import FitProcess
from kiosk.learn.recipe import LabelledEmbeddings, TrainingSettings, fit_head

RUNS = 7
QUIET_SLOWDOWN = 1.10


def _data(per_class: int, classes: int = 17, dim: int = 1024) -> LabelledEmbeddings:
    """Non-negative embedding-like data: class means plus noise, clipped at 0."""
    rng = np.random.default_rng(0)
    means = rng.gamma(1.0, 0.5, (classes, dim))
    y = np.repeat(np.arange(classes), per_class)
    x = np.maximum(means[y] + rng.normal(0, 0.6, (len(y), dim)), 0).astype(np.float32)
    mirrored = np.maximum(x + rng.normal(0, 0.2, x.shape), 0).astype(np.float32)
    return LabelledEmbeddings(x, y, classes, mirrored, np.ones(len(y), bool))


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _busy(stop: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)  # one core's worth of work
    a = np.random.default_rng(0).random((300, 300))
    while not stop.is_set():
        a = np.tanh(a @ a.T * 1e-3)


def _measure(process: FitProcess, data: LabelledEmbeddings) -> tuple[float, float]:
    """(median wall ms, median child CPU ms) of fit_head through ``process``."""
    settings = TrainingSettings()
    fit_head(data, settings, fitter=process)  # start and warm the child
    pid = process.pid
    assert pid is not None
    walls, cpus = [], []
    for _ in range(RUNS):
        cpu = _cpu_seconds(pid)
        started = time.perf_counter()
        fit_head(data, settings, fitter=process)
        walls.append(1000 * (time.perf_counter() - started))
        cpus.append(1000 * (_cpu_seconds(pid) - cpu))
    return statistics.median(walls), statistics.median(cpus)


def main() -> int:
    context = multiprocessing.get_context("spawn")
    misses = []
    print(f"fit_head through FitProcess, median of {RUNS}; {os.cpu_count()} cores")
    header = f"{'samples':>9}{'machine':>9}{'BLAS threads':>14}{'wall ms':>10}{'child CPU ms':>14}"
    print(header)
    print("-" * len(header))
    for per_class in (10, 50):
        data = _data(per_class)
        for machine in ("quiet", "busy"):
            stop = context.Event()
            workers = []
            if machine == "busy":
                workers = [context.Process(target=_busy, args=(stop,))]
                for worker in workers:
                    worker.start()
                time.sleep(1.0)  # let it get going
            walls = {}
            for threads in (1, None):
                with FitProcess(blas_threads=threads) as process:
                    wall, cpu = _measure(process, data)
                walls[threads] = wall
                label = "1" if threads else "default"
                print(f"{17 * per_class:>9}{machine:>9}{label:>14}{wall:>10.1f}{cpu:>14.1f}")
            stop.set()
            for worker in workers:
                worker.join()
            limit = walls[None] * (QUIET_SLOWDOWN if machine == "quiet" else 1.0)
            if walls[1] > limit:
                misses.append(f"{17 * per_class} samples, {machine}: {walls[1]:.0f} ms")
    print(
        f"targets: one thread <= {QUIET_SLOWDOWN:.2f}x the default on a quiet machine, "
        "<= the default beside other work"
    )
    if misses:
        print("MISSED: " + "; ".join(misses))
        return 1
    print("All targets met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
