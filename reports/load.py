"""Load a run's CSV files into DataFrames, with one clear error per bad file."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field

import pandas as pd

from llmclient import schema
from llmclient.server_metrics import Histogram
from scheduler.levels import LEVEL_LOG_COLUMNS

# (unix time, the server's histograms then)
Scrape = tuple[float, dict[str, Histogram]]


@dataclass
class Replica:
    """One replica's scrapes (``_server_metrics_N.csv``, ``_server_histograms_N.jsonl``)."""

    url: str
    server: pd.DataFrame | None
    histograms: list[Scrape]


STATS_COLUMNS = ["Type", "Name", "Request Count", "Failure Count", "50%", "90%", "99%"]
HISTORY_COLUMNS = ["Timestamp", "User Count", "Type", "Name", "Requests/s"]
SERVER_COLUMNS = ["time"]


class ReportInputError(Exception):
    """A file the report needs is missing or unreadable: one line, naming the file."""


@dataclass
class RunData:
    prefix: str
    # our exact per-request rows
    requests: pd.DataFrame | None = None
    # Locust's _stats.csv
    stats: pd.DataFrame | None = None
    # Locust's _stats_history.csv
    history: pd.DataFrame | None = None
    failures: pd.DataFrame | None = None
    # our _server_metrics.csv
    server: pd.DataFrame | None = None
    # a sweep's _levels.csv
    levels: pd.DataFrame | None = None
    # the server's latency histograms, per scrape
    histograms: list[Scrape] = field(default_factory=list)
    config: dict = field(default_factory=dict)
    # the CPU guard's verdict (_client_cpu.json)
    client_cpu: dict = field(default_factory=dict)
    # the client's floor (--calibrate: _calibration.json)
    calibration: dict = field(default_factory=dict)
    # several replicas' /metrics, each apart
    replicas: list[Replica] = field(default_factory=list)
    # the GPU exporters' scrapes (--telemetry-url: _gpu_telemetry.csv)
    telemetry: pd.DataFrame | None = None

    @property
    def name(self) -> str:
        return os.path.basename(self.prefix) or self.prefix


def _read(path: str, required: list[str], dtype: dict | None = None) -> pd.DataFrame:
    try:
        df = pd.read_csv(
            path, dtype=dtype, na_values=["N/A", "n/a", "NA", "nan", ""], keep_default_na=False, low_memory=False
        )
    except FileNotFoundError:
        raise ReportInputError(f"{path}: file not found") from None
    except pd.errors.EmptyDataError:
        raise ReportInputError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ReportInputError(f"{path}: not a readable CSV ({first})") from None
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read ({exc.strerror})") from None
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise ReportInputError(f"{path}: missing column(s) {', '.join(missing)}; is this the right file?")
    if len(df) and not _ends_with_newline(path):
        sys.stderr.write(f"warning: {path}: the last line is incomplete (truncated file?); it is left out\n")
        df = df.iloc[:-1]
    return df


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            return True
        f.seek(-1, os.SEEK_END)
        return f.read(1) == b"\n"


def load_requests(path: str) -> pd.DataFrame:
    """The per-request CSV, each column typed by its field of ``Row`` (llmclient/schema.py)."""
    df = _read(path, schema.REQUIRED, dtype={name: str for name in schema.TEXT + schema.BOOLEAN})
    for col in schema.NUMERIC:
        if col in df.columns:
            df[col] = pd.to_numeric(df[col], errors="coerce")
    for col in schema.TEXT:
        df[col] = df[col].fillna("") if col in df.columns else ""
    for col in schema.BOOLEAN:
        if col in df.columns:
            df[col] = df[col].fillna("").astype(str).str.strip().str.lower().eq("true")
    # a file from before the column
    if "cancelled" not in df.columns:
        df["cancelled"] = df["error"].map(schema.is_legacy_cancelled).astype(bool)
    if df["start_time"].isna().all() and len(df):
        raise ReportInputError(f"{path}: no usable start_time values")
    return df


def load_histograms(path: str) -> list[Scrape]:
    """``PREFIX_server_histograms.jsonl``: one line per scrape (a torn last line is left out)."""
    scrapes = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    data = json.loads(line)
                    scrapes.append((float(data.pop("time")), {k: Histogram.from_json(v) for k, v in data.items()}))
                except (ValueError, KeyError, TypeError):
                    if line.endswith("\n"):
                        raise ReportInputError(f"{path}: line {n} is not a scrape of histograms") from None
    except OSError as exc:
        raise ReportInputError(f"{path}: cannot read it ({exc.strerror})") from None
    return scrapes


def load_run(prefix: str) -> RunData:
    """Read what exists for ``prefix``; at least _requests.csv or _stats.csv must be there."""
    run = RunData(prefix)
    req_path = f"{prefix}_requests.csv"
    stats_path = f"{prefix}_stats.csv"
    if not os.path.exists(req_path) and not os.path.exists(stats_path):
        raise ReportInputError(f"{prefix}: found neither {req_path} nor {stats_path}")
    if os.path.exists(req_path):
        run.requests = load_requests(req_path)
    if os.path.exists(stats_path):
        run.stats = _read(stats_path, STATS_COLUMNS)
    hist_path = f"{prefix}_stats_history.csv"
    if os.path.exists(hist_path) and os.path.getsize(hist_path) > 0:
        run.history = _read(hist_path, HISTORY_COLUMNS)
        for col in run.history.columns[4:]:
            run.history[col] = pd.to_numeric(run.history[col], errors="coerce")
        run.history["Timestamp"] = pd.to_numeric(run.history["Timestamp"], errors="coerce")
    fail_path = f"{prefix}_failures.csv"
    if os.path.exists(fail_path) and os.path.getsize(fail_path) > 0:
        run.failures = _read(fail_path, ["Method", "Name", "Error", "Occurrences"])
    server_path = f"{prefix}_server_metrics.csv"
    if os.path.exists(server_path):
        run.server = _server_csv(server_path)
    levels_path = f"{prefix}_levels.csv"
    if os.path.exists(levels_path):
        # a file from before --repeat has none
        required = [c for c in LEVEL_LOG_COLUMNS if c != "repeat"]
        run.levels = _read(levels_path, required, dtype={"cache": str, "purpose": str, "kind": str})
        if "repeat" not in run.levels:
            run.levels["repeat"] = None
        for col in ("level", "value", "start", "send_end", "end", "extensions", "repeat"):
            run.levels[col] = pd.to_numeric(run.levels[col], errors="coerce")
        for col in ("saturated", "resolved"):
            run.levels[col] = run.levels[col].astype(str).str.lower().eq("true")
    histogram_path = f"{prefix}_server_histograms.jsonl"
    if os.path.exists(histogram_path):
        run.histograms = load_histograms(histogram_path)
    listed = f"{prefix}_replicas.json"
    if os.path.exists(listed):
        run.replicas = load_replicas(prefix, listed)
    telemetry_path = f"{prefix}_gpu_telemetry.csv"
    if os.path.exists(telemetry_path):
        run.telemetry = _read(telemetry_path, ["time", "url", "gpu_power_w", "gpu_energy_j", "gpu_utilization"])
        for col in ("time", "gpu_power_w", "gpu_energy_j", "gpu_utilization"):
            run.telemetry[col] = pd.to_numeric(run.telemetry[col], errors="coerce")
    run.config = _json(f"{prefix}_config.json")
    run.client_cpu = _json(f"{prefix}_client_cpu.json")
    run.calibration = _json(f"{prefix}_calibration.json")
    return run


def _server_csv(path: str) -> pd.DataFrame:
    server = _read(path, SERVER_COLUMNS)
    for col in server.columns:
        server[col] = pd.to_numeric(server[col], errors="coerce")
    return server


def load_replicas(prefix: str, listed: str) -> list[Replica]:
    """The replicas named in ``_replicas.json``, with what was scraped of each."""
    try:
        with open(listed, encoding="utf-8") as f:
            entries = json.load(f)
        numbered = [(int(e["replica"]), str(e["url"])) for e in entries]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ReportInputError(f"{listed}: not a list of replicas ({exc})") from None
    replicas = []
    for n, url in numbered:
        csv_path, hist_path = f"{prefix}_server_metrics_{n}.csv", f"{prefix}_server_histograms_{n}.jsonl"
        server = _server_csv(csv_path) if os.path.exists(csv_path) else None
        histograms = load_histograms(hist_path) if os.path.exists(hist_path) else []
        replicas.append(Replica(url, server, histograms))
    return replicas


def _json(path: str) -> dict:
    """A JSON object the run wrote beside its CSVs ({} when absent)."""
    if not os.path.exists(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, ValueError) as exc:
        raise ReportInputError(f"{path}: not readable JSON ({exc})") from None
    return data if isinstance(data, dict) else {}
