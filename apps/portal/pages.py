"""The last pages rendered, by everything a page depends on: the same answers are rendered once.

Under load, the requests of one worker that waited for the same coalesced
backend calls get the very same answers (flight.py) and, showing the same
names, would each render the very same page: rendering was most of a page's
CPU. A page is a function of its query string and its backends' answers
alone, so it is kept by exactly those (the answers' bytes, not just the names
asked for) among the last few rendered. A request whose answers differ in any
byte renders its own, so no page shows anything older than the backend answer
its request waited for: this is not a cache of backend data.

Pages with a failed backend call are not kept (their failures are logged per
request, as before).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable

SIZE = 32  # pages kept per worker: a few query strings' worth while answers change


class RecentPages:
    def __init__(self, size: int = SIZE):
        self._size = size
        self._pages: dict[Hashable, str] = {}  # oldest first
        self._lock = threading.Lock()

    def get(self, key: Hashable, render: Callable[[], tuple[str, bool]]) -> str:
        """The page kept for ``key``, else ``render()``'s (page, keep it), kept if it says so."""
        page = self._pages.get(key)
        if page is not None:
            return page
        page, keep = render()
        if keep:
            with self._lock:
                self._pages[key] = page
                while len(self._pages) > self._size:
                    del self._pages[next(iter(self._pages))]
        return page
