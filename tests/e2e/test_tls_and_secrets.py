"""TLS to the server, and the API key never written anywhere."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.e2e.test_bad_input import assert_one_clear_error
from tests.procs import ROOT, run_locust

KEY = "sk-live-0123456789abcdef-SECRET"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(d / "key.pem"),
            "-out",
            str(d / "cert.pem"),
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return d / "cert.pem", d / "key.pem"


@pytest.mark.timeout(120)
def test_https_with_ca_bundle_insecure_and_unverified(emulator_factory, certificate, tmp_path):
    cert, key = certificate
    emu = emulator_factory("--ssl-certfile", str(cert), "--ssl-keyfile", str(key), "--step-ms", "5")
    assert emu.url.startswith("https://")
    common = (
        "--headless",
        "-u",
        "2",
        "-n",
        "6",
        "-H",
        emu.url,
        "--max-tokens",
        "4",
        "--input-tokens",
        "32",
        "--only-summary",
    )
    ok = run_locust(*common, "--ca-bundle", str(cert), "--csv", str(tmp_path / "ca"))
    assert ok.returncode == 0, ok
    assert (tmp_path / "ca_requests.csv").read_text().count("\n") == 7
    insecure = run_locust(*common, "--insecure")
    assert insecure.returncode == 0, insecure
    refused = run_locust(*common)
    assert_one_clear_error(refused, "unreachable", "certificate verify failed")


def test_bad_ca_bundle(tmp_path):
    bogus = tmp_path / "ca.pem"
    bogus.write_text("not a certificate")
    run = run_locust("--headless", "-n", "1", "-H", "https://127.0.0.1:1", "--ca-bundle", str(bogus), timeout=60)
    assert_one_clear_error(run, "--ca-bundle")


@pytest.mark.timeout(180)
@pytest.mark.parametrize("how", ["flag", "env"])
def test_api_key_is_sent_and_never_written(emulator_factory, tmp_path, how):
    emu = emulator_factory("--api-key", KEY, "--step-ms", "5", "--fault", "http_500=0.2")
    out = tmp_path / "out"
    log = tmp_path / "locust.log"
    args = [
        "--headless",
        "-u",
        "4",
        "-n",
        "40",
        "-H",
        emu.url,
        "--max-tokens",
        "4",
        "--input-tokens",
        "64",
        "--csv",
        str(out / "run"),
        "--csv-full-history",
        "--html",
        str(out / "locust.html"),
        "--json-file",
        str(out / "stats"),
        "--logfile",
        str(log),
        "--loglevel",
        "DEBUG",
        "--warmup",
        "1",
    ]
    env = None
    if how == "flag":
        args += ["--api-key", KEY]
    else:
        env = {"OPENAI_API_KEY": KEY}
    run = run_locust(*args, env=env)
    # the injected 500s are failures; the key itself was accepted
    assert run.returncode == 1, run
    assert "401" not in (out / "run_failures.csv").read_text()
    report = subprocess.run(
        [sys.executable, "-m", "reports", str(out / "run")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert report.returncode == 0, report.stderr
    written = [p for p in out.rglob("*") if p.is_file()] + [log]
    assert len(written) >= 10
    for path in written:
        assert KEY not in path.read_bytes().decode("utf-8", "replace"), path
    assert KEY not in run.output and KEY not in report.stdout + report.stderr


def test_wrong_key_is_a_clear_error(emulator_factory):
    emu = emulator_factory("--api-key", KEY)
    run = run_locust("--headless", "-n", "1", "-H", emu.url, "--api-key", "sk-wrong", timeout=60)
    line = assert_one_clear_error(run, "refused the API key", "401")
    assert "sk-wrong" not in run.output and KEY not in line
