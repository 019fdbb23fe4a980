"""Background work: one job at a time, cancel, switching images mid-inference, clean shutdown."""

from __future__ import annotations

import sys
import threading
import time

import pytest

import core
from app.workers import TaskRunner

QTHREAD_DESTROYED = "QThread: Destroyed while thread is still running"


def test_binding_keeps_refcounts():
    """PySide6 6.12.0 on Python 3.11 drops a reference to None on every call of a void method and
    crashes the process after a few thousand calls; the project must not run on such a build."""
    from PySide6.QtCore import QObject

    obj = QObject()
    before = sys.getrefcount(None)
    for _ in range(1000):
        obj.setObjectName("x")
    assert sys.getrefcount(None) >= before - 10, "this PySide6 build leaks references to None (use != 6.12.0)"


def counting_job(n: int, delay: float, log: list, *, cancel):
    for i in range(n):
        if cancel():
            raise core.Cancelled("stopped")
        time.sleep(delay)
        log.append((i, threading.get_ident()))
        yield core.Progress(fraction=(i + 1) / n)
    return "done"


def test_runner_runs_jobs_one_at_a_time_off_the_gui_thread(qtbot):
    runner = TaskRunner("test")
    log: list = []
    progress: list = []
    t1 = runner.submit("a", counting_job, 3, 0.01, log)
    t1.progress.connect(progress.append)
    t2 = runner.submit("b", counting_job, 2, 0.01, log)
    with qtbot.waitSignals([t1.succeeded, t2.succeeded], timeout=10000):
        pass
    assert t1.result == "done" and t2.result == "done"
    assert [i for i, _ in log] == [0, 1, 2, 0, 1]  # serial: b started after a finished
    assert all(tid != threading.get_ident() for _, tid in log)
    assert [p.fraction for p in progress] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert runner.shutdown(5000) and not runner.busy


def test_cancel_stops_a_job_and_errors_are_reported(qtbot):
    runner = TaskRunner("test")
    log: list = []
    task = runner.submit("long", counting_job, 1000, 0.005, log)
    with qtbot.waitSignal(task.cancelled, timeout=10000):
        qtbot.waitUntil(lambda: len(log) >= 3, timeout=5000)
        task.cancel()
    assert len(log) < 1000 and task.result is None

    def failing(*, cancel):
        yield core.Progress()
        raise core.ImageReadError("x.png: truncated")

    bad = runner.submit("bad", failing)
    with qtbot.waitSignal(bad.failed, timeout=5000) as blocker:
        pass
    assert isinstance(blocker.args[0], core.ImageReadError) and "truncated" in str(blocker.args[0])
    assert runner.shutdown(5000)


def test_switching_images_mid_inference_cancels(qtbot, window, tiny_ckpt, big_image, scenes):
    c = window.controller
    with qtbot.waitSignal(c.modelChanged, timeout=20000):
        window.open_model(tiny_ckpt)
    shown = []
    c.outcomeReady.connect(lambda o: shown.append(o.path))
    with qtbot.waitSignal(c.predictionStarted, timeout=20000):
        c.open_image(big_image)
    big_task = c._predict_task
    qtbot.waitUntil(lambda: big_task.started_at is not None, timeout=10000)  # the big forward is running
    small = scenes / "images" / "scene_0001.png"
    with qtbot.waitSignal(big_task.cancelled, timeout=30000):
        with qtbot.waitSignal(c.outcomeReady, timeout=30000) as blocker:
            c.open_image(small)
    assert blocker.args[0].path == small
    assert shown == [small]  # the big image's prediction never reached the views
    assert c.image.path == small and window.seg.canvas.overlay.image.shape == (96, 128)


def test_closing_during_inference_is_clean(qtbot, tiny_ckpt, big_image, capfd):
    from app.main_window import MainWindow

    w = MainWindow(restore=False)
    qtbot.addWidget(w)
    w.show()
    with qtbot.waitSignal(w.controller.modelChanged, timeout=20000):
        w.open_model(tiny_ckpt)
    with qtbot.waitSignal(w.controller.predictionStarted, timeout=20000):
        w.open_image(big_image)
    task = w.controller._predict_task
    qtbot.waitUntil(lambda: task.started_at is not None, timeout=10000)
    t0 = time.perf_counter()
    assert w.close()
    took = time.perf_counter() - t0
    assert not w.controller.inference.busy or task.is_cancelled
    assert w.controller.inference.wait(0) and w.controller.io.wait(0)  # no thread left running
    assert took < 30
    out, err = capfd.readouterr()
    assert QTHREAD_DESTROYED not in out + err


def test_a_chain_runs_its_steps_on_their_runners_in_order(qtbot):
    from app.workers import Chain

    a, b = TaskRunner("a"), TaskRunner("b")
    log: list = []

    def job(tag, value, *, cancel):
        log.append((tag, threading.get_ident()))
        yield core.Progress(message=tag)
        return value + 1

    chain = Chain("two", [lambda v: a.submit("one", job, "one", v), lambda v: v * 10,
                          lambda v: b.submit("two", job, "two", v)])
    seen = []
    chain.progress.connect(lambda rec: seen.append(rec.message))
    with qtbot.waitSignal(chain.succeeded, timeout=5000) as blocker:
        chain.start(1)
    assert blocker.args == [21] and seen == ["one", "two"] and [t for t, _ in log] == ["one", "two"]
    assert log[0][1] != log[1][1] != threading.get_ident()  # each on its own runner's thread
    # a failing step stops the chain; the steps after it never run
    ran = []
    bad = Chain("bad", [lambda v: (_ for _ in ()).throw(core.StudioError("nope")), lambda v: ran.append(v)])
    with qtbot.waitSignal(bad.failed, timeout=5000) as blocker:
        bad.start()
    assert "nope" in str(blocker.args[0]) and ran == [] and bad.is_finished
    # cancel: the running step is cancelled and no later step starts
    stop = Chain("stop", [lambda v: a.submit("long", counting_job, 1000, 0.005, []), lambda v: ran.append(v)])
    with qtbot.waitSignal(stop.cancelled, timeout=10000):
        stop.start()
        qtbot.wait(50)
        stop.cancel()
    assert ran == [] and stop.is_finished and stop.is_cancelled
    assert a.shutdown(5000) and b.shutdown(5000)
