"""Several replicas behind one run, spread client-side: ``-H http://a:8000,http://b:8000``.

``--host-strategy round-robin`` sends each process's requests to the hosts in turn;
``least-inflight`` to the host with the fewest of this process's requests in flight (ties in
turn); ``session`` keeps each session's turns on one host (by a hash of its id, in every process
alike, as a router with session affinity does), other requests in turn. The control plane (models, ``/tokenize``) uses the first host; the prefix cache is reset
and warmed on every host, and every host's ``/metrics`` is scraped (unless ``--metrics-url``).
"""

from __future__ import annotations

import zlib

from llmclient.http import Target

STRATEGIES = ("round-robin", "least-inflight", "session")


def split_hosts(text: str) -> list[str]:
    """The hosts of ``-H`` (comma-separated), each checked (raises ValueError with one line)."""
    hosts = [h.strip().rstrip("/") for h in (text or "").split(",") if h.strip()]
    for host in hosts:
        Target.parse(host)
    return hosts


def primary(text: str) -> str:
    """The first host: the one asked for models and token counts."""
    hosts = split_hosts(text)
    return hosts[0] if hosts else text


class HostChooser:
    def __init__(self, hosts: list[str], strategy: str = "round-robin") -> None:
        self.hosts = hosts
        self.strategy = strategy
        self.in_flight = dict.fromkeys(hosts, 0)
        self._turn = 0

    def pick(self, session: str = "") -> str:
        """The host for the next request, of ``session`` if it is a session's (count it with ``started`` and
        ``finished``)."""
        n = len(self.hosts)
        if n == 1:
            return self.hosts[0]
        if session and self.strategy == "session":
            return self.hosts[zlib.crc32(session.encode()) % n]
        order = [self.hosts[(self._turn + i) % n] for i in range(n)]
        host = min(order, key=self.in_flight.__getitem__) if self.strategy == "least-inflight" else order[0]
        self._turn = (self.hosts.index(host) + 1) % n
        return host

    def started(self, host: str) -> None:
        self.in_flight[host] = self.in_flight.get(host, 0) + 1

    def finished(self, host: str) -> None:
        self.in_flight[host] = max(0, self.in_flight.get(host, 0) - 1)
