"""A SCIM directory served on loopback, and a player for the provider request sequences in
``tests/fixtures/scim`` (written from Microsoft's and Okta's published examples)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from roster.api.app import create_app
from roster.demo.slapd import free_port
from roster.directories import DirectorySpec, create_directory
from roster.runtime import Runtime
from tests.conftest import make_runtime
from tests.support.helpers import new_org
from tests.support.servers import serve_app

FIXTURES = Path(__file__).parent.parent / "fixtures" / "scim"


@dataclass
class ScimSite:
    rt: Runtime
    url: str  # the Roster server
    org: str
    directory: str
    base: str  # the directory's SCIM endpoint
    token: str

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}", "User-Agent": "roster-tests"}
        return httpx.Client(base_url=self.base, headers=headers, timeout=60, **kwargs)

    def another_directory(self, provider: str = "generic") -> tuple[str, str]:
        row = create_directory(self.rt, DirectorySpec(self.org, "Second", "scim", {"provider": provider}))
        return row["id"], row["scim_token"]


@contextmanager
def scim_site(database_url: str, tmp_path: Path, provider: str = "generic") -> Iterator[ScimSite]:
    port = free_port()
    rt = make_runtime(database_url, tmp_path, public_url=f"http://127.0.0.1:{port}")
    try:
        org = new_org(rt)
        row = create_directory(rt, DirectorySpec(org, "Provider", "scim", {"provider": provider}))
        with serve_app(create_app(rt), port) as url:
            yield ScimSite(rt, url, org, row["id"], row["scim_base_url"], row["scim_token"])
    finally:
        rt.engine.dispose()


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return re.sub(r"\{(\w+)\}", lambda m: ids.get(m[1], m[0]), value)
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    return value


def replay(client: httpx.Client, name: str) -> tuple[dict[str, Any], dict[str, str]]:
    """Send every step of a fixture, checking each status and echoed field; (fixture, captured ids)."""
    fixture = json.loads((FIXTURES / name).read_text())
    ids: dict[str, str] = {}
    for step in fixture["steps"]:
        body = _fill(step.get("body"), ids)
        path = _fill(step["path"], ids)
        response = (
            client.request(step["method"], path, json=body)
            if body is not None
            else client.request(step["method"], path)
        )
        where = f"{name}: {step['name']}"
        assert response.status_code == step["expect_status"], (
            f"{where}: {response.status_code} {response.text}"
        )
        got = response.json() if response.content else {}
        for key, want in _fill(step.get("expect") or {}, ids).items():
            assert got.get(key) == want, f"{where}: {key} is {got.get(key)!r}, expected {want!r}"
        for placeholder, field in (step.get("capture") or {}).items():
            ids[placeholder] = got[field]
    return fixture, ids


def value_at(resource: dict[str, Any], path: str) -> Any:
    """A fixture's expected-value path: ``name.givenName``, ``emails[type eq "work"].value``,
    ``urn:...:User:manager.value`` (written here independently of Roster's own path code)."""
    urn, sep, rest = path.rpartition(":") if path.startswith("urn:") else ("", "", path)
    holder = resource.get(urn, {}) if sep else resource
    m = re.fullmatch(r'(\w+)\[(\w+) eq "([^"]*)"\]\.(\w+)', rest)
    if m:
        items = [i for i in holder.get(m[1], []) if str(i.get(m[2])).lower() == m[3].lower()]
        return items[0].get(m[4]) if items else None
    attr, _, sub = rest.partition(".")
    value = holder.get(attr)
    return value.get(sub) if sub and isinstance(value, dict) else value
