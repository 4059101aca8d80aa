"""Agent tokens resolved to hosts, remembered briefly so a long-poll or report needs no database read.

A removal in this process forgets the host at once; one made by another controller process sharing the
database takes effect within `ttl` seconds.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from shipyard.controller.store.tokens import hash_token


@dataclass(frozen=True)
class KnownAgent:
    host_id: int
    host: str
    group: str


class AgentTokenCache:
    def __init__(self, ttl: float = 60.0) -> None:
        self._ttl = ttl
        self._lock = threading.Lock()
        self._by_hash: dict[str, tuple[float, KnownAgent]] = {}

    def get(self, token: str) -> KnownAgent | None:
        key = hash_token(token)
        with self._lock:
            found = self._by_hash.get(key)
            if found is None:
                return None
            if time.monotonic() - found[0] > self._ttl:
                del self._by_hash[key]
                return None
            return found[1]

    def put(self, token: str, agent: KnownAgent) -> None:
        with self._lock:
            self._by_hash[hash_token(token)] = (time.monotonic(), agent)

    def forget_host(self, host_id: int) -> None:
        with self._lock:
            for key in [key for key, (_, agent) in self._by_hash.items() if agent.host_id == host_id]:
                del self._by_hash[key]
