"""The console under test: a real ``roster serve`` on loopback and Debian's chromium through Playwright."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from roster.demo.slapd import free_port
from tests.support.secret_watch import WATCH
from tests.support.servers import unavailable

ROSTER = str(Path(sys.executable).parent / "roster")
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@contextmanager
def roster_serve(
    env: dict[str, str], port: int | None = None, logs: list[str] | None = None
) -> Iterator[str]:
    """``roster serve`` as its own process on 127.0.0.1; yields its base URL. ``logs`` gets what
    it logged (the access log included) when it has stopped."""
    port = port or free_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - read below; a pipe nobody drains would block the server
    proc = subprocess.Popen(
        [ROSTER, "serve", "--host", "127.0.0.1", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log,  # uvicorn's access log
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    try:
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline and proc.poll() is None, "roster serve did not start"
            time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(20)
        log.seek(0)
        text = log.read().decode(errors="replace")
        log.close()
        if logs is not None:
            logs.append(text)
        assert "Traceback" not in text, f"roster serve logged an unexpected error:\n{text[-4000:]}"
        leaked = WATCH.found_in(text)  # the secrets this test process made or knows
        assert not leaked, f"roster serve logged a secret ({leaked[0][:6]}…)"


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless chromium (Debian's), or the test is skipped (a failure under CI=true)."""
    if not Path(CHROMIUM).exists():
        unavailable("chromium", f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical violations on the page (rule id and the first element)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    found = []
    for v in results.response["violations"]:
        if v.get("impact") in ("serious", "critical"):
            target = v["nodes"][0]["target"] if v.get("nodes") else []
            found.append(f"{v['id']}: {v['help']} at {target}")
    return found
