"""Workarounds for four Locust 2.47 behaviours that would distort a run. Each is idempotent.

1. ``install_final_csv_write``: Locust rewrites ``_stats.csv``, ``_failures.csv``
   and ``_exceptions.csv`` once a second and closes them at shutdown without a
   last write, so a run that ends by ``-n`` (or Ctrl-C) loses up to its last
   second from Locust's CSVs. This wraps ``StatsCSVFileWriter.close_files`` to
   write and flush the final rows (leaving the files to close at exit), with Locust's own row functions, and append one
   last history row.
2. ``install_cached_default_args``: a worker handling a ``spawn`` message calls
   ``argument_parser.default_args_dict()`` (which builds Locust's whole parser)
   once per option, about a second of CPU during which the worker's event loop,
   and so every stream it reads, is frozen. The defaults never change within a
   process, so the function is cached.
3. ``end_ramp``: a master stopped while it ramps users up (``-r``) keeps ramping: the loop in
   ``MasterRunner.start`` holds the users dispatcher that ``stop`` drops, so it sends its workers
   new ``spawn`` messages after their ``stop``, and the stop then waits on users that never end.
   This sets the dispatcher's target to the users it has spawned, so its loop ends at its next step.
4. ``install_requests_only_total``: Locust's "Aggregated" row (``stats.total``) takes in every
   entry, so the suite's ``TTFT`` and ``TPOT`` rows would average with the requests' E2E: a mix of
   three quantities. This keeps them out of the total (their own rows stay), so the row is the
   requests'. Workers report their total, so the master's is the requests' too.
"""

from __future__ import annotations

import functools
import time

from locust import argument_parser
from locust.stats import RequestStats, StatsCSVFileWriter

_MARK = "_llm_final_write_installed"


def _rewrite(handle, writer, columns, write_rows) -> None:
    handle.seek(0)
    writer.writerow(columns)
    write_rows(writer)
    handle.truncate()


def install_final_csv_write() -> None:
    cls = StatsCSVFileWriter
    if getattr(cls, _MARK, False):
        return
    original = cls.close_files

    def close_files(self: StatsCSVFileWriter) -> None:
        try:
            _rewrite(
                self.requests_csv_filehandle,
                self.requests_csv_writer,
                self.requests_csv_columns,
                self._requests_data_rows,
            )
            _rewrite(
                self.failures_csv_filehandle, self.failures_csv_writer, self.failures_columns, self._failures_data_rows
            )
            _rewrite(
                self.exceptions_csv_filehandle,
                self.exceptions_csv_writer,
                self.exceptions_columns,
                self._exceptions_data_rows,
            )
            if self.stats_history_csv_filehandle.tell() == 0:
                self.stats_history_csv_writer.writerow(self.stats_history_csv_columns)
            self._stats_history_data_rows(self.stats_history_csv_writer, time.time())
            for handle in (
                self.requests_csv_filehandle,
                self.stats_history_csv_filehandle,
                self.failures_csv_filehandle,
                self.exceptions_csv_filehandle,
            ):
                handle.flush()
        # already closed: nothing more to write
        except (OSError, ValueError):
            original(self)
        # Left open on purpose: Locust's writer greenlet can still wake once during shutdown and
        # would fail on a closed file; it rewrites the same final figures, and exit closes them.

    cls.close_files = close_files  # type: ignore[method-assign]
    setattr(cls, _MARK, True)


def install_cached_default_args() -> None:
    current = argument_parser.default_args_dict
    if getattr(current, "cache_info", None) is not None:
        return
    argument_parser.default_args_dict = functools.cache(current)


def end_ramp(runner: object) -> None:
    """End a master's ramp-up now (see 3. above); nothing when it is not ramping."""
    dispatcher = getattr(runner, "_users_dispatcher", None)
    if dispatcher is not None and hasattr(dispatcher, "_current_user_count"):
        # its loop adds users while the current count is below the target: no step is left
        dispatcher._target_user_count = dispatcher._current_user_count


# the suite's rows beside each request's (users/services/recorder.py)
OWN_ROWS = ("TTFT", "TPOT")
_TOTAL_MARK = "_llm_requests_only_total"


def install_requests_only_total() -> None:
    """Keep the suite's TTFT and TPOT rows out of Locust's "Aggregated" row (see 4. above)."""
    cls = RequestStats
    if getattr(cls, _TOTAL_MARK, False):
        return
    original = cls.log_request

    def log_request(self: RequestStats, method: str, name: str, response_time: int, content_length: int) -> None:
        if method in OWN_ROWS:
            self.entries[(name, method)].log(response_time, content_length)
        else:
            original(self, method, name, response_time, content_length)

    cls.log_request = log_request  # type: ignore[method-assign]
    setattr(cls, _TOTAL_MARK, True)
