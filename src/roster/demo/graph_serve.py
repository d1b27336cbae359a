"""Serve an emulated Entra tenant of a given size in its own process (benchmarks, manual tries).

``python -m roster.demo.graph_serve --users 100000 --groups 10000 --memberships 1000000 --folder DIR``
prints one JSON line (base URL, Graph URL, CA file, tenant id, client id, client secret) and serves
until stopped. ``POST /_emulator/changes?count=N&seed=S`` applies N random changes (edits, new
users, deletes, membership changes) and answers how many were made: a benchmark's incremental round.
"""

from __future__ import annotations

import argparse
import json
import random
import secrets
import signal
import sys
import threading
from pathlib import Path

from roster.demo.graph import App, GraphEmulator
from roster.demo.graph_tenant import Tenant, new_guid


def build(
    tenant: Tenant, users: int, groups: int, memberships: int, seed: int = 7
) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    user_ids = [
        tenant.put_user(
            {
                "displayName": f"User {i}",
                "givenName": "User",
                "surname": str(i),
                "mail": f"user{i}@example.com",
                "userPrincipalName": f"user{i}@example.onmicrosoft.com",
                "jobTitle": rng.choice(["Engineer", "Manager", "Analyst", None]),
                "accountEnabled": rng.random() > 0.01,
                "userType": "Member",
                "businessPhones": [],
            }
        )
        for i in range(users)
    ]
    group_ids = [tenant.put_group({"displayName": f"Group {j}", "description": None}) for j in range(groups)]
    for _ in range(memberships):
        tenant.add_member(rng.choice(group_ids), rng.choice(user_ids))
    for j in range(0, groups, 5):  # every fifth group nested in another
        tenant.add_member(group_ids[j], group_ids[(j + 1) % groups])
    return user_ids, group_ids


def change(tenant: Tenant, user_ids: list[str], group_ids: list[str], count: int, seed: int) -> int:
    rng = random.Random(seed)
    for n in range(count):
        kind = rng.choice(["edit", "edit", "add", "delete", "member", "unmember"])
        uid = rng.choice(user_ids)
        if kind == "edit" and tenant.visible("users", uid):
            tenant.put_user({"jobTitle": f"Changed {seed}.{n}"}, uid)
        elif kind == "add":
            user_ids.append(
                tenant.put_user({"displayName": f"New {seed}.{n}", "mail": f"new{seed}x{n}@example.com"})
            )
        elif kind == "delete" and tenant.visible("users", uid):
            tenant.delete(uid)
        elif kind == "member" and tenant.visible("users", uid):
            tenant.add_member(rng.choice(group_ids), uid)
        else:
            group = rng.choice(group_ids)
            if tenant.members[group]:
                tenant.remove_member(group, rng.choice(list(tenant.members[group])))
    return count


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m roster.demo.graph_serve")
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--memberships", type=int, default=10_000)
    parser.add_argument("--page-size", type=int, default=999)
    parser.add_argument("--folder", type=Path, required=True)
    args = parser.parse_args()
    tenant = Tenant()
    user_ids, group_ids = build(tenant, args.users, args.groups, args.memberships)
    emulator = GraphEmulator(args.folder, tenant, page_size=args.page_size, members_per_page=args.page_size)
    app = emulator.register(App(client_id=new_guid(), secret=secrets.token_urlsafe(24)))
    emulator.control = lambda count, seed: change(tenant, user_ids, group_ids, count, seed)
    emulator.start()
    info = {
        "base": emulator.base,
        "graph_url": emulator.graph_url,
        "ca_file": str(emulator.ca_file),
        "tenant_id": tenant.tenant_id,
        "client_id": app.client_id,
        "client_secret": app.secret,
    }
    print(json.dumps(info), flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    stop.wait()
    emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
