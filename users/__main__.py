"""``python -m users --help``: Locust's help including this suite's options.

Locust prints ``--help`` before it imports a locustfile (locust issue #2917),
so custom options never show there; this prints the same help with them.
"""

from __future__ import annotations

import sys

from locust import events
from locust.argument_parser import get_parser

from users.settings.parser import add_options


def main() -> None:
    events.init_command_line_parser.add_listener(add_options)
    parser = get_parser()
    parser.prog = "locust -f locustfile.py"
    parser.print_help()


if __name__ == "__main__":
    main()
    sys.exit(0)
