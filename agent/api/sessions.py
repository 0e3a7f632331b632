"""Chat sessions kept in memory per (case, session id): one chat engine (agent.case.chat) each."""

from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from typing import Any


class Sessions:
    """Chat sessions in memory, per (case id, session id), least recently used dropped first."""

    def __init__(self, cap: int):
        self.cap = cap
        self._d: OrderedDict[tuple[str, str], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, cid: str, sid: str | None) -> tuple[str, Any | None]:
        with self._lock:
            if sid is not None and (cid, sid) in self._d:
                self._d.move_to_end((cid, sid))
                return sid, self._d[(cid, sid)]
        return secrets.token_hex(16), None

    def put(self, cid: str, sid: str, session: Any) -> None:
        with self._lock:
            self._d[(cid, sid)] = session
            self._d.move_to_end((cid, sid))
            while len(self._d) > self.cap:
                self._d.popitem(last=False)

    def drop_case(self, cid: str) -> None:
        with self._lock:
            for k in [k for k in self._d if k[0] == cid]:
                del self._d[k]

