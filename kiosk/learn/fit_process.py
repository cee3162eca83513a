"""Fit a softmax head in a separate process.

L-BFGS and SGD on kiosk-sized data are thousands of small numpy calls: Python
work that holds the interpreter lock most of the time. In a thread beside a
GUI, the GUI waits for that lock, and when the machine is busy the training
thread can be descheduled while holding it (a lower priority only makes that
worse): the window stalls for a tenth of a second or more. A child process has
its own interpreter lock, so the GUI process only forwards progress messages.

``FitProcess`` keeps one child (multiprocessing "spawn": safe beside threads,
and supported in frozen bundles through ``multiprocessing.freeze_support``)
and reuses it for every fit. ``warm_up`` starts it early, so the first Train
does not wait for the child's imports. A child that dies is replaced at the
next fit; the fit it was running fails with a clear message.

The child uses one BLAS thread (``blas_threads``, set with threadpoolctl when
the child starts). A head's matrices are small: a second thread made fits no
faster, doubled their CPU time, and beside other work (the camera, the
embedding interpreter) the threads' spin-waits made a fit several times slower
(bench/bench_blas_threads.py).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kiosk.learn.softmax import SoftmaxRegression
from kiosk.learn.training import (
    CancelFlag,
    TrainingConfig,
    TrainingProgress,
    TrainingResult,
    cancel_checker,
)

# How much nicer than its parent the child runs: training is what can wait.
CHILD_NICENESS = 10
# How often the parent looks for messages and passes on a cancel (s). Cancel
# must reach the child well within the 100 ms the kiosk promises.
POLL_S = 0.02
# How long ``close`` lets the child leave on its own before terminating it (s).
CLOSE_TIMEOUT_S = 2.0
# BLAS threads in the child (None: the library's default, every core).
CHILD_BLAS_THREADS = 1

Fitter = Callable[..., tuple[SoftmaxRegression, TrainingResult]]
"""``fitter(model, data, config, callback=..., cancel=...) -> (fitted model, result)``."""


def fit_here(
    model: SoftmaxRegression,
    data: Mapping[str, Any],
    config: TrainingConfig,
    *,
    callback: Callable[[TrainingProgress], Any] | None = None,
    cancel: CancelFlag = None,
) -> tuple[SoftmaxRegression, TrainingResult]:
    """The in-process fitter: ``model.fit`` in the calling thread."""
    return model, model.fit(data, config, callback=callback, cancel=cancel)


class TrainingProcessError(RuntimeError):
    """The training process stopped before it answered."""


class FitProcess:
    """A reusable child process that runs ``SoftmaxRegression.fit``; a ``Fitter``.

    Thread-safe: ``fit`` runs in a worker thread, ``warm_up`` and ``close`` in
    the GUI thread; fits are serialized.
    """

    def __init__(
        self, niceness: int = CHILD_NICENESS, blas_threads: int | None = CHILD_BLAS_THREADS
    ) -> None:
        self.niceness = niceness
        self.blas_threads = blas_threads
        self._context = multiprocessing.get_context("spawn")
        self._start_lock = threading.Lock()
        self._fit_lock = threading.Lock()
        self._process: Any = None  # multiprocessing.Process
        self._conn: Any = None  # the parent's end of the pipe
        self._cancel: Any = None  # multiprocessing.Event the child checks
        self._closed = False

    @property
    def pid(self) -> int | None:
        """The child's process id while it runs, else None."""
        process = self._process
        return process.pid if process is not None and process.is_alive() else None

    def warm_up(self) -> None:
        """Start the child now if it is not running (returns at once)."""
        self._child()

    def child_blas_threads(self) -> list[int]:
        """The BLAS thread count of every BLAS library loaded in the child (asks it).

        Raises:
            TrainingProcessError: the child stopped or this fitter was closed.
        """
        with self._fit_lock:
            process, conn, _ = self._child()
            try:
                conn.send(("threads",))
                _, payload = conn.recv()
            except (EOFError, OSError):
                self._discard(process, conn)
                raise TrainingProcessError("The training process stopped unexpectedly") from None
            return list(payload)

    def __call__(
        self,
        model: SoftmaxRegression,
        data: Mapping[str, Any],
        config: TrainingConfig,
        *,
        callback: Callable[[TrainingProgress], Any] | None = None,
        cancel: CancelFlag = None,
    ) -> tuple[SoftmaxRegression, TrainingResult]:
        """``model.fit(data, config, ...)`` in the child; the fitted copy and its result.

        ``callback`` runs in the calling thread for every progress report. The
        calling thread's ``cancel`` is passed on within ``POLL_S``.

        Raises:
            TrainingProcessError: the child stopped (killed, out of memory) or
                this fitter was closed.
            Exception: whatever ``fit`` raised in the child (e.g. ``ValueError``).
        """
        cancelled = cancel_checker(cancel)
        with self._fit_lock:
            process, conn, child_cancel = self._child()
            child_cancel.clear()
            answered = False
            try:
                conn.send(("fit", model, dict(data), config))
                while True:
                    if cancelled():
                        child_cancel.set()
                    if conn.poll(POLL_S):
                        kind, payload = conn.recv()
                        if kind == "progress":
                            if callback is not None:
                                callback(payload)
                            continue
                        answered = True
                        if kind == "done":
                            return payload
                        raise payload  # fit's own error; the child carries on
                    if not process.is_alive():
                        break
            except (EOFError, OSError):
                pass
            finally:
                if not answered:
                    # Died, or our callback raised mid-fit: a child with a fit
                    # still under way would answer the next request with stale
                    # messages, so it is replaced.
                    self._discard(process, conn)
            code = process.exitcode
            how = f" (exit code {code})" if code not in (None, 0) else ""
            raise TrainingProcessError(f"The training process stopped unexpectedly{how}")

    def close(self) -> None:
        """Stop the child (asks first, then terminates). Idempotent."""
        with self._start_lock:
            self._closed = True
            self._stop_locked()

    def __enter__(self) -> FitProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ inside
    def _child(self) -> tuple[Any, Any, Any]:
        with self._start_lock:
            if self._closed:
                raise TrainingProcessError("The training process has been shut down")
            if self._process is None or not self._process.is_alive():
                self._stop_locked()
                ours, theirs = self._context.Pipe()
                cancel = self._context.Event()
                process = self._context.Process(
                    target=serve,
                    args=(theirs, cancel, self.niceness, self.blas_threads),
                    name="kiosk-fit",
                    daemon=True,  # never outlives the kiosk
                )
                process.start()
                theirs.close()
                self._process, self._conn, self._cancel = process, ours, cancel
            return self._process, self._conn, self._cancel

    def _stop_locked(self) -> None:
        process, conn, cancel = self._process, self._conn, self._cancel
        self._process = self._conn = self._cancel = None
        if process is None:
            return
        cancel.set()  # a fit under way stops at its next check
        with contextlib.suppress(OSError, ValueError):  # already gone
            conn.send(("stop",))
        process.join(CLOSE_TIMEOUT_S)
        if process.is_alive():
            process.terminate()
            process.join()
        conn.close()

    def _discard(self, process: Any, conn: Any) -> None:
        with self._start_lock:
            if self._process is process:
                self._process = self._conn = self._cancel = None
        if process.is_alive():
            process.terminate()
        process.join()
        conn.close()


def serve(conn: Any, cancel: Any, niceness: int, blas_threads: int | None = None) -> None:
    """The child's loop: answer ``("fit", model, data, config)`` and ``("threads",)``
    until ``("stop",)`` or EOF."""
    _lower_priority(niceness)
    _limit_blas(blas_threads)
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if message[0] == "threads":
            conn.send(("threads", _blas_threads()))
            continue
        if message[0] != "fit":
            return
        _, model, data, config = message
        try:
            result = model.fit(
                data, config, callback=lambda p: conn.send(("progress", p)), cancel=cancel
            )
        except Exception as error:
            conn.send(("error", _picklable(error)))
        else:
            conn.send(("done", (model, result)))


def _limit_blas(threads: int | None) -> None:
    """Cap the BLAS thread pools of this process for the rest of its life."""
    if threads is None:
        return
    from threadpoolctl import threadpool_limits

    # The returned limiter would restore the old limits when used as a context
    # manager; kept as a plain call, the cap lasts as long as the child.
    threadpool_limits(limits=threads, user_api="blas")


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"]


def _picklable(error: Exception) -> Exception:
    try:
        pickle.loads(pickle.dumps(error))
    except Exception:
        return RuntimeError(f"{type(error).__name__}: {error}")
    return error


def _lower_priority(niceness: int) -> None:
    if niceness <= 0 or not hasattr(os, "nice") or sys.platform == "win32":
        return
    with contextlib.suppress(OSError):  # not permitted here: the normal priority
        os.nice(niceness)
