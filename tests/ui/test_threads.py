"""Worker threads: the GUI thread never waits on a running worker.

A Save pressed in the same moment the previous one failed (or a Train right
after one finished) used to wait on the GUI thread for the old worker thread,
whose quit was still queued behind that very call: the window froze for good.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading

from PySide6.QtCore import QObject, QThread, Signal, Slot

from kiosk.ui.workers import WorkerThreads
from kiosk.vision.sources import DemoSource

from .conftest import capture_two_classes


class Job(QObject):
    """A worker that optionally waits for ``release``, then says which thread it ran on."""

    done = Signal(str)

    def __init__(self, release: threading.Event | None = None) -> None:
        super().__init__()
        self.release = release

    @Slot()
    def run(self) -> None:
        if self.release is not None:
            self.release.wait(10)
        self.done.emit(QThread.currentThread().objectName())


class Idle(QObject):
    """A worker whose run returns without a finish signal: its thread idles in its loop."""

    @Slot()
    def run(self) -> None:
        pass


class Waiter(QObject):
    """On the GUI thread: waits for ``thread`` to end as soon as its job is done."""

    def __init__(self) -> None:
        super().__init__()
        self.thread_: QThread | None = None
        self.ended: list[bool] = []

    @Slot(str)
    def on_done(self, _name: str) -> None:
        assert self.thread_ is not None
        self.ended.append(self.thread_.wait(5000))


def test_a_finished_job_ends_without_help_from_the_gui_thread(qtbot):
    threads = WorkerThreads()
    job, waiter = Job(), Waiter()
    job.done.connect(waiter.on_done)
    waiter.thread_ = threads.start(job, job.done, name="job")
    qtbot.waitUntil(lambda: bool(waiter.ended), timeout=5000)
    assert waiter.ended == [True]
    qtbot.waitUntil(lambda: len(threads) == 0, timeout=5000)


def test_a_superseded_job_is_kept_until_its_thread_ends(qtbot):
    threads = WorkerThreads()
    release = threading.Event()
    slow, fast = Job(release), Job()
    names: list[str] = []
    fast.done.connect(names.append)
    slow_thread = threads.start(slow, slow.done, name="slow")
    threads.start(fast, fast.done, name="fast")
    qtbot.waitUntil(lambda: names == ["fast"] and len(threads) == 1, timeout=5000)
    assert slow_thread.isRunning()
    release.set()
    qtbot.waitUntil(lambda: len(threads) == 0, timeout=5000)
    assert slow_thread.isFinished()


def test_stop_all_ends_idle_threads():
    threads = WorkerThreads()
    started = [threads.start(Idle(), name=f"idle {i}") for i in range(3)]
    threads.stop_all()
    assert len(threads) == 0
    assert all(thread.isFinished() for thread in started)


def test_save_again_the_moment_a_save_fails_and_train_again_the_moment_training_ends(
    make_kiosk, qtbot, tmp_path
):
    source = DemoSource()
    output = tmp_path / "model.tflite"
    controller = make_kiosk(source, output=output, size=None).controller
    capture_two_classes(qtbot, controller, source)

    trained: list[object] = []

    def train_again(result: object) -> None:
        trained.append(result)
        if len(trained) == 1:
            assert controller.train()

    controller.trainingFinished.connect(train_again)
    assert controller.train()
    qtbot.waitUntil(lambda: len(trained) == 2, timeout=120_000)
    assert all(result is not None for result in trained)

    # A folder where the labels file should go makes the first save fail; the
    # handler clears it and saves again from inside the failure signal.
    (tmp_path / "labels.txt").mkdir()
    failures: list[str] = []

    def save_again(text: str) -> None:
        failures.append(text)
        (tmp_path / "labels.txt").rmdir()
        assert controller.save()

    controller.saveFailed.connect(save_again)
    with qtbot.waitSignal(controller.saveFinished, timeout=60_000):
        assert controller.save()
    assert len(failures) == 1
    assert output.is_file() and (tmp_path / "labels.txt").is_file()


def test_a_killed_training_process_fails_that_training_only(make_kiosk, qtbot):
    source = DemoSource()
    kiosk = make_kiosk(source, size=None)
    controller = kiosk.controller
    capture_two_classes(qtbot, controller, source)
    default = controller.training_config
    controller.set_training_config(
        dataclasses.replace(
            default, optimizer="sgd", num_iter=10_000_000, learning_rate=0.01, report_every=50
        )
    )
    fitter = controller._fitter

    def kill(_curve) -> None:
        if fitter.pid is not None:
            os.kill(fitter.pid, signal.SIGKILL)

    controller.trainingProgress.connect(kill)
    messages: list[str] = []
    controller.message.connect(lambda text, level: messages.append(text))
    with qtbot.waitSignal(controller.trainingFinished, timeout=60_000) as finished:
        assert controller.train()
    assert finished.args[0] is None
    assert any("training process stopped unexpectedly" in text for text in messages)
    controller.trainingProgress.disconnect(kill)

    controller.set_training_config(default)
    with qtbot.waitSignal(controller.trainingFinished, timeout=60_000) as finished:
        assert controller.train()
    assert finished.args[0] is not None and controller.session.head is not None
