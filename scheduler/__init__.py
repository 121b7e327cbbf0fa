"""Open-loop load, with no Locust and no I/O: when each request is due (``arrivals``), and the
proof that the schedule was kept (``proof``)."""
