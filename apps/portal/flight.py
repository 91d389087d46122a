"""Request coalescing ("single flight"): identical calls at the same time share one.

Under load, many requests of one portal process ask a backend the same thing
at the same moment (every default page asks for the same names). The first
caller of a key leads a flight and makes the call; whoever asks for the same
key while it runs waits for that flight's result instead of making its own
call. Nothing is kept after the flight lands: the next caller starts a new
one, so no answer is older than one backend round trip (nginx's
proxy_cache_lock, Go's singleflight).

Results are shared between threads as they are: give it immutable values.
Under gevent, a landed flight's waiters go on one per turn of the event loop
(see ``_one_per_turn``).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Hashable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(Exception):
    """A waiter's own time ran out before the flight it waited for landed."""


class LeaderFailed(Exception):
    """The flight's leader raised: its waiters get this, the leader its own exception."""


class _Flight:
    __slots__ = ("failure", "landed", "result", "waiters")

    def __init__(self):
        self.waiters: list[threading.Event] = []  # one per waiter, set when it may go on
        self.landed = False  # the leader's call returned or raised
        self.result = None
        self.failure: str | None = None  # what the leader raised (its repr: no traceback kept alive)


class Flights:
    """The calls in flight in this process, by key."""

    def __init__(self):
        self._lock = threading.Lock()
        self._flying: dict[Hashable, _Flight] = {}

    def call(self, key: Hashable, function: Callable[[], T], wait: float) -> T:
        """``function()``'s result, or that of the identical call in flight; waits at most ``wait`` s for one.

        Raises WaitTimeout when the flight joined is still running after ``wait``
        seconds (the leader itself is bounded by its own timeouts), LeaderFailed
        when its leader raised.
        """
        with self._lock:
            flight = self._flying.get(key)
            leading = flight is None
            if leading:
                flight = self._flying[key] = _Flight()
            else:
                landed = threading.Event()
                flight.waiters.append(landed)
        if not leading:
            # Landed but not yet resumed (gevent: waiters go one per turn) is landed: its answer is there.
            if not landed.wait(wait) and not flight.landed:
                raise WaitTimeout(key)
            if flight.failure is not None:
                raise LeaderFailed(f"the identical call this one waited for raised {flight.failure}")
            return flight.result
        try:
            flight.result = function()
        except BaseException as error:
            flight.failure = repr(error)
            raise
        finally:
            # Out of the table before waking the waiters: a call from now on starts a new flight
            # (no caching), and whatever happened, no waiter is left waiting.
            with self._lock:
                del self._flying[key]
            flight.landed = True
            _release(flight.waiters)
        return flight.result


def _release(waiters: list[threading.Event]) -> None:
    """Let a landed flight's waiters go on: at once with threads; under gevent, one per turn of the loop."""
    if waiters and _gevent_patched():
        import gevent

        gevent.spawn(_one_per_turn, waiters)
    else:
        for landed in waiters:
            landed.set()


def _one_per_turn(waiters: list[threading.Event]) -> None:
    """Resume the waiters one at a time, with the worker's ready connections served in between.

    A gevent worker runs its greenlets one at a time. Woken together, the
    waiters of a flight would each write their page before the worker read
    any new request (about a millisecond of CPU each): the clients served
    first would send their next request at once, but it would only be read,
    and the next flight start, once every waiter had written. Each request
    would then take the backend's delay plus the whole queue's CPU (160 ms
    instead of 100 with 64 waiters). A timer of no length between two waiters
    gives the loop a turn, in which it reads the requests that arrived, so the
    next flight leaves while this one's answers are still being served.
    """
    import gevent

    for landed in waiters:
        landed.set()
        gevent.sleep(_TURN)


_TURN = 1e-6  # seconds: a timer rather than sleep(0), whose callbacks the loop runs 50 at a time before polling


@functools.cache  # asked at the first flight's landing, in a worker: after any patching
def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:
        return False
    return monkey.is_module_patched("threading")
