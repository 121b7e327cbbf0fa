"""GPU telemetry during a run (``--telemetry-url``): a GPU exporter's Prometheus page, scraped to
``PREFIX_gpu_telemetry.csv`` (one row per scrape and exporter). The reports turn it into power, energy and
energy per token (``reports/energy.py``).

The exporters are known by their documented metric names: NVIDIA's DCGM exporter and AMD's device metrics
exporter (with or without its ``amd_`` prefix). A page carries one series per GPU: power and energy are
summed over them, utilization averaged. No Locust; the scraper's I/O is ``llmclient.http``'s.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import ssl
import time
import urllib.parse
from dataclasses import dataclass
from typing import TextIO

from llmclient.errors import TransportError
from llmclient.http import Connection, Target, request

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuExporter:
    """One exporter's series: each a metric name and the factor that turns its unit into the column's."""

    name: str
    # watts, now
    power: tuple[tuple[str, float], ...]
    # joules, a counter
    energy: tuple[tuple[str, float], ...]
    # the share of the time the GPU was busy (0..1)
    utilization: tuple[tuple[str, float], ...]


def _amd(names: tuple[str, ...], factor: float) -> tuple[tuple[str, float], ...]:
    return tuple((f"{prefix}{name}", factor) for name in names for prefix in ("", "amd_"))


EXPORTERS = (
    GpuExporter(
        "dcgm",
        power=(("DCGM_FI_DEV_POWER_USAGE", 1.0),),
        # mJ since the driver loaded
        energy=(("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", 1e-3),),
        utilization=(("DCGM_FI_DEV_GPU_UTIL", 0.01),),
    ),
    GpuExporter(
        "amd",
        power=_amd(("gpu_package_power", "gpu_power_usage"), 1.0),
        # µJ
        energy=_amd(("gpu_energy_consumed",), 1e-6),
        utilization=_amd(("gpu_gfx_activity",), 0.01),
    ),
)
COLUMNS = ("time", "url", "exporter", "gpus", "gpu_power_w", "gpu_energy_j", "gpu_utilization")


def parse_page(text: str) -> dict[str, list[float]]:
    """A Prometheus text page: each metric name's values, one per series (comments skipped)."""
    out: dict[str, list[float]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        brace = line.find("{")
        if brace >= 0:
            name, rest = line[:brace], line[line.rfind("}") + 1 :].split()
        else:
            name, *rest = line.split()
        try:
            value = float(rest[0])
        except (IndexError, ValueError):
            continue
        if math.isfinite(value):
            out.setdefault(name, []).append(value)
    return out


def gpu_sample(text: str) -> dict[str, object] | None:
    """One scrape's figures: the exporter, its GPUs, their summed power and energy, their mean utilization
    (None: a page with none of the known series)."""
    values = parse_page(text)
    for exporter in EXPORTERS:
        power = _first(values, exporter.power)
        if power is None:
            continue
        energy = _first(values, exporter.energy)
        utilization = _first(values, exporter.utilization)
        return {
            "exporter": exporter.name,
            "gpus": len(power),
            "gpu_power_w": sum(power),
            "gpu_energy_j": sum(energy) if energy else None,
            "gpu_utilization": sum(utilization) / len(utilization) if utilization else None,
        }
    return None


def _first(values: dict[str, list[float]], series: tuple[tuple[str, float], ...]) -> list[float] | None:
    for name, factor in series:
        if name in values:
            return [v * factor for v in values[name]]
    return None


KNOWN = ", ".join(name for exporter in EXPORTERS for name, _ in exporter.power[:1])


class GpuTelemetry:
    """Scrapes each exporter's page and writes a row per exporter and scrape (when given a path)."""

    def __init__(self, urls: list[str], path: str | None, tls: ssl.SSLContext | None = None) -> None:
        self.urls = [url.strip() for url in urls]
        # raises ValueError with one line
        self.pages = [telemetry_page(url, tls) for url in self.urls]
        self._conns = [Connection(target, read_timeout=10.0, connect_timeout=5.0) for target, _ in self.pages]
        self._warned: set[str] = set()
        self.path = path
        self._file: TextIO | None = None
        self._writer: csv.DictWriter[str] | None = None
        # each URL's newest sample
        self.latest: dict[str, dict[str, object]] = {}

    def scrape(self) -> None:
        now = time.time()
        for (_, path), conn, url in zip(self.pages, self._conns, self.urls, strict=True):
            sample = self._read(conn, url, path)
            if sample is not None:
                self.latest[url] = sample
                self._write({"time": now, "url": url, **sample})

    def _read(self, conn: Connection, url: str, path: str) -> dict[str, object] | None:
        try:
            head, body = request(conn, "GET", path)
        except TransportError as exc:
            self._warn(url, f"could not scrape the GPU exporter {url}: {exc}")
            return None
        if head.status != 200:
            self._warn(url, f"the GPU exporter {url} answered HTTP {head.status}; its telemetry is not recorded")
            return None
        sample = gpu_sample(body.decode("utf-8", "replace"))
        if sample is None:
            self._warn(url, f"{url} has none of the known GPU series ({KNOWN}); its telemetry is not recorded")
        return sample

    def _warn(self, url: str, message: str) -> None:
        # said once, not at every scrape
        if url not in self._warned:
            self._warned.add(url)
            logger.warning("%s", message)

    def _write(self, row: dict[str, object]) -> None:
        if self.path is None:
            return
        if self._writer is None:
            folder = os.path.dirname(self.path)
            if folder:
                os.makedirs(folder, exist_ok=True)
            self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115 - closed in close()
            self._writer = csv.DictWriter(self._file, COLUMNS, lineterminator="\n")
            self._writer.writeheader()
        self._writer.writerow({k: ("" if row.get(k) is None else row[k]) for k in COLUMNS})
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        for conn in self._conns:
            conn.close()
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None


def telemetry_page(url: str, tls: ssl.SSLContext | None = None) -> tuple[Target, str]:
    """``http://host:9400/metrics`` -> the host's target and the page's path (``/metrics`` when none)."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"takes an exporter's page, http://HOST:PORT/metrics, got {url!r}")
    return Target.parse(f"{parts.scheme}://{parts.netloc}", tls), (parts.path or "/metrics") + (
        f"?{parts.query}" if parts.query else ""
    )
