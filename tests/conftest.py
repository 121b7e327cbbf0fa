from gevent import monkey

# before anything imports ssl/socket, as Locust itself would
monkey.patch_all()

import pytest  # noqa: E402

from tests.procs import Emulator  # noqa: E402


@pytest.fixture
def emulator_factory(tmp_path):
    started: list[Emulator] = []

    def start(*args: str) -> Emulator:
        emu = Emulator(tmp_path, *args)
        started.append(emu)
        return emu

    yield start
    for emu in started:
        emu.stop()
