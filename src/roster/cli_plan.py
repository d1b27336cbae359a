"""What a dry run would do, as an admin reads it: counts per kind, then names and e-mails."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from roster.domain.changes import ChangeSet
from roster.runtime import Runtime
from roster.store.rows import load_rows
from roster.store.schema import directory_users

SECTIONS = (
    ("new_users", "new users (accounts to provision)"),
    ("changed_users", "changed users"),
    ("removed_users", "deleted from the directory (accounts to disable)"),
    ("skipped", "entries skipped"),
)


def plan_lists(rt: Runtime, changes: ChangeSet) -> dict[str, list[dict[str, Any]]]:
    """Every change of a plan by person: e-mail and name, never only an internal id."""
    removed_ids = [u.roster_id for u in changes.users_removed]
    with rt.engine.connect() as conn:
        known = load_rows(conn, directory_users, removed_ids)
    return {
        "new_users": [
            {"email": u.email, "name": u.name, "idp_id": u.external_id} for u in changes.users_created
        ],
        "changed_users": [
            {
                "email": u.record.email,
                "name": u.record.name,
                "idp_id": u.record.external_id,
                "change": "deactivated" if u.deactivates else "attributes",
            }
            for u in changes.users_updated
        ],
        "removed_users": [
            {
                "id": u.roster_id,
                "idp_id": u.external_id,
                "email": known.get(u.roster_id, {}).get("email"),
                "name": known.get(u.roster_id, {}).get("name"),
            }
            for u in changes.users_removed
        ],
        "skipped": [{"dn": s.dn, "reason": s.reason} for s in changes.skipped],
    }


def plan_text(data: dict[str, Any], most: int | None) -> Iterator[str]:
    """The lists as lines: a heading with the count per kind, then up to ``most`` entries each
    (None: all) and how many more there are."""
    for key, title in SECTIONS:
        entries = data.get(key) or []
        if not entries:
            continue
        yield f"{title}: {len(entries)}"
        for entry in entries[:most] if most is not None else entries:
            yield f"  {_line(key, entry)}"
        if most is not None and len(entries) > most:
            yield f"  and {len(entries) - most} more (--all lists them, --json gives everything)"


def _line(key: str, entry: dict[str, Any]) -> str:
    if key == "skipped":
        return f"{entry['dn']}: {entry['reason']}"
    who = f"{entry.get('email') or '(no e-mail)'} ({entry.get('name') or entry.get('idp_id')})"
    return f"{who}: {entry['change']}" if key == "changed_users" else who
