"""``locust -f locustfile.py --help`` with the suite's options in it.

Locust prints ``--help`` before it imports a locustfile (locust issue #2917), so an option a
locustfile adds never shows there. ``scripts/setup.sh`` puts a one-line ``.pth`` file in the
project's ``.venv`` that runs this file in a ``locust`` process asked for its help, and only
there: it adds the suite's options to Locust's parser, as the locustfile would.
(``python -m users --help`` prints the same anywhere.)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from locust import events

from users.settings.parser import add_options

events.init_command_line_parser.add_listener(add_options)
