"""The API as its OpenAPI document describes it, checked by schemathesis against a real server on
loopback: every operation with generated valid and invalid input, with an admin key and with an
organization key, on SQLite and PostgreSQL. No answer may be a server error, use a status code
the document does not list for that operation, or break the documented content type or schema.
And every operation of the document is described and lists its errors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from roster.api.app import create_app
from roster.demo.slapd import Slapd
from roster.directories import sync_directory
from roster.runtime import Runtime
from roster.store import repo
from tests.support.helpers import ldap_directory, new_org
from tests.support.ldap_tree import Tree
from tests.support.servers import serve_app

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = 16  # per operation and key, valid and invalid input: about 2,100 requests per store
SKIPPED = {
    ("GET", "/sso/authorize"),  # redirects to the identity provider: not an API answer
}


Served = tuple[str, dict[str, str], dict[str, str]]


@dataclass
class Findings:
    requests: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)


@pytest.fixture
def served(rt: Runtime, slapd: Slapd, tree: Tree) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """A server with one organization holding one of everything; returns its URL, the two keys
    and real ids by path parameter name (half the generated cases use them)."""
    rt.settings = rt.settings.model_copy(update={"webhook_allow_private": True})
    org = new_org(rt)
    with rt.engine.begin() as conn:
        admin, own = repo.create_api_key(conn, None, "admin")[1], repo.create_api_key(conn, org, "org")[1]
    people = [tree.add_user(f"oa{i}") for i in range(3)]
    tree.add_group("oa-team", people)
    d = ldap_directory(rt, org, slapd.url, slapd.admin_dn, slapd.admin_password, [tree.search_path])
    assert sync_directory(rt, d).ok
    with serve_app(create_app(rt)) as url:
        yield url, {"admin": admin, "org": own}, _real_ids(url, admin, org, d)


def _real_ids(url: str, key: str, org: str, d: str) -> dict[str, str]:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as http:
        person = {"email": "local.person@example.com"}
        account = http.post(f"/api/v1/organizations/{org}/accounts", json=person).json()
        group = http.post(f"/api/v1/organizations/{org}/groups", json={"name": "Local"}).json()
        hook = http.post(f"/api/v1/organizations/{org}/webhooks", json={"url": "http://127.0.0.1:9/h"}).json()
        user = http.get("/directory_users", params={"directory": d}).json()["data"][0]
        run = http.get(f"/api/v1/directories/{d}/sync_runs").json()["data"][0]
    return {
        "org_id": org,
        "directory_id": d,
        "account_id": account["id"],
        "member_id": account["id"],
        "group_id": group["id"],
        "endpoint_id": hook["id"],
        "user_id": user["id"],
        "run_id": run["id"],
        "resource_id": "doc-1",
    }


def test_every_operation_is_described_and_lists_its_errors(served: Served) -> None:
    url, _, _ = served
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    described = undescribed = 0
    missing = []
    for method, path, operation in _operations(schema.raw_schema):
        if operation.get("description"):
            described += 1
        else:
            undescribed += 1
            missing.append(f"{method} {path}")
        if path.startswith(("/api/v1", "/directories", "/directory_")):
            assert {"401", "404", "422"} <= set(operation["responses"]), (method, path)
    assert undescribed == 0, missing
    paths = schema.raw_schema["paths"]
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths) and described > 60


def test_the_api_conforms_to_its_openapi_document(served: Served) -> None:
    url, keys, real = served
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    found = Findings()
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        for who, key in keys.items():
            _fuzz(operation, url, {"Authorization": f"Bearer {key}"}, f"{who} key", found, real)
    assert found.requests > 1000
    print(f"{found.requests} requests; answers by status: {dict(sorted(found.statuses.items()))}")
    assert sum(n for status, n in found.statuses.items() if status < 300) > 200  # not only refusals
    assert not found.failures, "\n\n".join(f"{k}\n{v}" for k, v in sorted(found.failures.items()))


def _fuzz(
    operation: object, url: str, headers: dict[str, str], who: str, found: Findings, real: dict[str, str]
) -> None:
    strategy = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),  # type: ignore[attr-defined]
        operation.as_strategy(GenerationMode.NEGATIVE),  # type: ignore[attr-defined]
    )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=strategy)
    def run(case: schemathesis.Case) -> None:
        found.requests += 1
        if found.requests % 2 and case.path_parameters:
            case.path_parameters = {k: real.get(k, v) for k, v in case.path_parameters.items()}
        response = case.call(base_url=url, headers=headers, timeout=30)
        found.statuses[response.status_code] = found.statuses.get(response.status_code, 0) + 1
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as exc:  # record the first failure of each operation, then go on
            label = f"{case.method} {case.path} ({who})"
            found.failures.setdefault(label, f"{str(exc)[:1500]}\n{case.as_curl_command()}"[:2500])

    run()


def _operations(doc: dict[str, object]) -> Iterator[tuple[str, str, dict[str, object]]]:
    for path, item in doc["paths"].items():  # type: ignore[attr-defined]
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield method.upper(), path, operation
