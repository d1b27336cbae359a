"""Tenant isolation over every operation the OpenAPI document lists (a new route is covered
without touching this test): another organization's key, given the first organization's real
ids in the path, the query and the body, gets the same answer as for ids that exist nowhere (so
no answer tells that an object exists), never any of the first organization's ids, names or
addresses, and changes nothing of it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from schemathesis.generation.modes import GenerationMode

from roster.runtime import Runtime
from roster.store import repo
from roster.store.schema import metadata
from tests.integration.test_openapi import Served
from tests.integration.test_openapi import served as served  # a fixture
from tests.support.helpers import new_org

# names under which requests carry an object of an organization, in queries and bodies
ID_FIELDS = {
    "organization_id": "org_id",
    "organization": "org_id",
    "directory": "directory_id",
    "directory_id": "directory_id",
    "group": "group_id",
    "user": "user_id",
    "account_id": "account_id",
    "principal_id": "account_id",
    "owner_account_id": "account_id",
    "event_id": "event_id",
}


# Columns the server's own background work moves while the test runs (the webhook deliverer leasing
# and retrying the organization's endpoint, a worker's lease): no request of another organization's
# key touches them, and the rest of each row (a cursor, a URL, a secret, any row added) still counts.
BACKGROUND = frozenset(
    {"lease_owner", "lease_until", "head_since", "head_attempts", "next_attempt_at", "consecutive_failures"}
    | {"failing", "updated_at", "last_check_at", "last_check_ok", "last_check_error"}
)


def snapshot(rt: Runtime, org: str, directory: str) -> dict[str, list[str]]:
    """Every row of the organization (and of its directory) in every table."""
    found = {}
    with rt.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if "organization_id" in table.c:
                where = table.c.organization_id == org
            elif "directory_id" in table.c:
                where = table.c.directory_id == directory
            else:
                continue
            rows = conn.execute(sa.select(table).where(where)).mappings()
            found[table.name] = sorted(
                json.dumps({k: v for k, v in r.items() if k not in BACKGROUND}, default=str, sort_keys=True)
                for r in rows
            )
    return found


def test_another_organizations_key_reaches_nothing_of_the_first(rt: Runtime, served: Served) -> None:
    url, _, real = served
    with rt.engine.begin() as conn:
        other = repo.create_api_key(conn, new_org(rt, "Other", "other.example"), "other")[1]
    before = snapshot(rt, real["org_id"], real["directory_id"])
    markers = _markers(rt, real)
    made_up = {k: v.rsplit("_", 1)[0] + "_01M8QZZZZZZZZZZZZZZZZZZZZZ" for k, v in real.items()}
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json")
    tried, leaks = 0, []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {other}"}, timeout=30) as http:
        for result in schema.get_all_operations():
            operation = result.ok()
            if not _id_names(operation):
                continue  # names nothing of an organization: nothing to isolate
            label = f"{operation.method.upper()} {operation.path}"
            case = _one_valid_case(operation)
            tried += 1
            status, text = _attempt(http, case, real)
            missing, _ = _attempt(http, case, made_up)
            seen = [m for m in markers if m in text and m not in real.values()]
            if status != missing:  # the answer tells an existing object from a missing one
                leaks.append(f"{label}: {status} for the organization's object, {missing} for none")
            elif seen:
                leaks.append(f"{label} -> {status} showing {seen[:3]}: {text[:300]}")
    assert tried > 40, tried
    assert not leaks, "\n".join(leaks)
    assert snapshot(rt, real["org_id"], real["directory_id"]) == before


def _markers(rt: Runtime, real: dict[str, str]) -> list[str]:
    """What only the first organization's answers contain: its ids, names and addresses."""
    found = set(real.values()) - {"doc-1"}
    with rt.engine.connect() as conn:
        for table in metadata.sorted_tables:
            if "organization_id" in table.c and {"id", "email"} & set(table.c.keys()):
                for column in ("id", "email"):
                    if column in table.c:
                        where = table.c.organization_id == real["org_id"]
                        found |= {
                            str(v) for v in conn.execute(sa.select(table.c[column]).where(where)).scalars()
                        }
    return sorted(m for m in found if m and len(m) > 8)


def _id_names(operation: Any) -> set[str]:
    """The parameters and top-level body fields of the operation that name an organization's object."""
    names = {p.name for p in operation.path_parameters} | {p.name for p in operation.query}
    for body in operation.body:
        names |= set((body.definition.get("schema") or {}).get("properties") or {})
    return {n for n in names if n in ID_FIELDS or n.endswith("_id") or n == "token"} - {"before", "after"}


def _one_valid_case(operation: Any) -> schemathesis.Case:
    found: list[schemathesis.Case] = []

    @settings(
        max_examples=1,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(GenerationMode.POSITIVE))
    def first(case: schemathesis.Case) -> None:
        found.append(case)

    first()
    return found[0]


def _attempt(http: httpx.Client, case: schemathesis.Case, ids: dict[str, str]) -> tuple[int, str]:
    """The case with ``ids`` put wherever it names an object of an organization."""

    def swap(name: str, value: Any) -> Any:
        return ids.get(name, ids.get(ID_FIELDS.get(name, ""), value))

    path = case.path
    for name, value in (case.path_parameters or {}).items():
        path = path.replace("{" + name + "}", str(swap(name, value)))
    query = {k: swap(k, v) for k, v in (case.query or {}).items()}
    body = {k: swap(k, v) for k, v in case.body.items()} if isinstance(case.body, dict) else None
    response = http.request(case.method, path, params=query, json=body)
    return response.status_code, response.text
