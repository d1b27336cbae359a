"""Every secret Roster keeps encrypted, sealed again under a new key in one transaction.

``roster rotate-key`` uses it: the key file first holds the new and the old key (a crash at any
point leaves keys that open everything), the store is resealed in one transaction, then the
key file keeps only the new key.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from roster.crypto import SecretBox
from roster.notify.mail import SEALED
from roster.store.schema import directories, mail_outbox, webhook_endpoints
from roster.store.schema_access import agent_ca, sso_logins

# (table, column, prefix): each column holding a sealed value, the prefix some values carry
SEALED_COLUMNS: tuple[tuple[sa.Table, str, str], ...] = (
    (directories, "secret", ""),
    (webhook_endpoints, "secret", ""),
    (webhook_endpoints, "previous_secret", ""),
    (sso_logins, "sealed", ""),
    (agent_ca, "key_sealed", ""),
    (mail_outbox, "body", SEALED),
)


def reseal_all(conn: Connection, box: SecretBox) -> dict[str, int]:
    """Seal every stored secret again with ``box``'s first key; returns how many per column.
    Raises (and the caller's transaction applies nothing) when one does not open."""
    counts: dict[str, int] = {}
    for table, name, prefix in SEALED_COLUMNS:
        column, key = table.c[name], table.c[table.primary_key.columns.keys()[0]]
        where: list[sa.ColumnElement[bool]] = [column.is_not(None)]
        if prefix:
            where.append(column.startswith(prefix))
        rows = conn.execute(sa.select(key, column).where(*where)).all()
        for row_id, value in rows:
            fresh = prefix + box.reseal(value[len(prefix) :])
            conn.execute(sa.update(table).where(key == row_id).values({name: fresh}))
        counts[f"{table.name}.{name}"] = len(rows)
    return counts
