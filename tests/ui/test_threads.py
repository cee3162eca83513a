"""Workers (superqt, in Qt's thread pool): the GUI thread never waits on a running one.

A Save pressed in the same moment the previous one failed (or a Train right
after one finished) once waited on the GUI thread for the old worker, whose
end was queued behind that very call: the window froze for good. Cancel must be
honoured, the GUI thread must keep running while workers do, and shutdown must
end every worker.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import threading

import pytest
from PySide6.QtCore import QCoreApplication, QThreadPool

from kiosk.ui.controller import AppState
from kiosk.vision.sources import DemoSource

from .conftest import capture_two_classes


def _endless(controller) -> None:
    """A schedule that never ends by itself: only Cancel (or shutdown) stops it."""
    controller.set_training_config(
        dataclasses.replace(
            controller.training_config,
            optimizer="sgd",
            num_iter=10_000_000,
            learning_rate=0.01,
            report_every=50,
        )
    )


@pytest.mark.slow
def test_cancel_is_honoured_while_the_gui_thread_keeps_ticking(make_kiosk, qtbot, heartbeat):
    source = DemoSource()
    controller = make_kiosk(source, size=None).controller
    capture_two_classes(qtbot, controller, source)
    _endless(controller)
    curves: list[object] = []
    controller.trainingProgress.connect(curves.append)
    heartbeat.start()
    assert controller.train()
    qtbot.waitUntil(lambda: len(curves) >= 3 and heartbeat.beats > 10, timeout=60_000)
    with qtbot.waitSignal(controller.trainingFinished, timeout=60_000) as finished:
        controller.cancel_training()
    heartbeat.stop()
    result = finished.args[0]
    assert result is not None and result.cancelled
    assert controller.state != AppState.TRAINING
    # The plot's last curve is the whole run, sent before trainingFinished.
    assert controller.last_curve is curves[-1]


def test_a_task_runs_while_the_gui_thread_ticks(make_kiosk, qtbot, heartbeat):
    controller = make_kiosk(size=None).controller
    release = threading.Event()
    done: list[str] = []
    heartbeat.start()
    assert controller.run_task(
        "Waiting", lambda: (release.wait(), threading.current_thread().name)[1], done.append
    )
    assert controller.state == AppState.WORKING
    assert not controller.run_task("Again", lambda: None, done.append)  # one at a time
    qtbot.waitUntil(lambda: heartbeat.beats > 10, timeout=10_000)
    assert not done
    release.set()
    qtbot.waitUntil(lambda: bool(done), timeout=10_000)
    assert done[0] != threading.main_thread().name
    assert controller.state != AppState.WORKING


@pytest.mark.slow
def test_shutdown_ends_every_worker(make_kiosk, qtbot):
    source = DemoSource()
    controller = make_kiosk(source, size=None).controller
    capture_two_classes(qtbot, controller, source)
    _endless(controller)
    started: list[object] = []
    controller.trainingProgress.connect(started.append)
    assert controller.train()
    qtbot.waitUntil(lambda: bool(started), timeout=60_000)
    workers = [worker for worker, _ended in controller._workers]
    assert any(worker.is_running for worker in workers)  # the vision loop and training
    finished: list[object] = []
    controller.trainingFinished.connect(finished.append)
    controller.shutdown()
    assert not any(worker.is_running for worker in workers)
    pool = QThreadPool.globalInstance()
    qtbot.waitUntil(lambda: pool.activeThreadCount() == 0, timeout=10_000)
    QCoreApplication.processEvents()  # whatever was queued is delivered, and ignored
    assert finished == []


@pytest.mark.slow
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


@pytest.mark.slow
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
