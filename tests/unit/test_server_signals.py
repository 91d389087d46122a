"""apps.common.server: a stop signal that reached a gunicorn worker before its own handlers is acted on.

The real thing (a worker stopped while it starts, both worker classes) is
tests/web/test_portal_server.py; here, the two shapes of gunicorn's signal queue the apps' locks allow.
"""

from __future__ import annotations

import queue
import signal

import pytest

from apps.common import server


class Worker:
    def __init__(self):
        self.calls: list[tuple[str, int]] = []
        self.messages: list[str] = []
        self.log = self

    def info(self, message, *args):
        self.messages.append(message % args)

    def handle_exit(self, sig, _frame):
        self.calls.append(("exit", sig))

    def handle_quit(self, sig, _frame):
        self.calls.append(("quit", sig))


class Arbiter:
    def __init__(self, signals, shape):
        if shape == "list":  # gunicorn 23-26
            self.SIG_QUEUE = list(signals)
        else:  # gunicorn 27
            self.SIG_QUEUE = queue.SimpleQueue()
            for sig in signals:
                self.SIG_QUEUE.put_nowait(sig)


def obey(signals, shape):
    worker = Worker()
    arbiter = Arbiter(signals, shape)
    server._keep_master_signal_queue(arbiter, worker)
    server._obey_signals_before_handlers(worker)
    return worker


SHAPES = pytest.mark.parametrize("shape", ["list", "simple-queue"])


@SHAPES
def test_a_sigterm_before_the_handlers_stops_the_worker_gracefully(shape):
    worker = obey([signal.SIGCHLD, signal.SIGTERM], shape)
    assert worker.calls == [("exit", signal.SIGTERM)]
    assert worker.messages == ["Stop signal SIGTERM came while the worker was starting: stopping"]


@SHAPES
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_a_quick_shutdown_signal_before_the_handlers_quits_the_worker(shape, sig):
    assert obey([sig], shape).calls == [("quit", sig)]


@SHAPES
def test_other_signals_the_master_queued_are_left_alone(shape):
    # SIGCHLD, SIGHUP, SIGTTIN: the master's business, which it acts on from its own copy of the queue.
    worker = obey([signal.SIGCHLD, signal.SIGHUP, signal.SIGTTIN], shape)
    assert worker.calls == [] and worker.messages == []


def test_a_worker_forked_without_the_hook_is_left_alone():
    worker = Worker()
    server._obey_signals_before_handlers(worker)
    assert worker.calls == []


@pytest.mark.parametrize("queue_attribute", [None, "elsewhere"])
def test_a_gunicorn_without_that_queue_still_boots_its_workers(queue_attribute):
    # SIG_QUEUE is gunicorn's private attribute: a release without it (or with another shape) loses only the fix.
    arbiter = type("Arbiter", (), {} if queue_attribute is None else {"SIG_QUEUE": queue_attribute})()
    worker = Worker()
    server._keep_master_signal_queue(arbiter, worker)
    server._obey_signals_before_handlers(worker)
    assert worker.calls == []
