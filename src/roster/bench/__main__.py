"""``python -m roster.bench [SUITE ...]``: run benchmarks and write bench/results.json.

Suites: ``fleet`` (many organizations due at once, N ``roster worker`` processes on
PostgreSQL), ``sync`` (a generated directory of --users/--groups/--memberships in a private slapd:
full sync, unchanged re-sync and incremental run against the ``ldapsearch`` baseline, with peak
RSS) and ``webhooks`` (delivery throughput with 50 endpoints, commit-to-receipt latency).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path

from roster.bench import agent, fleet, graph, scim, sync, webhooks


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument(
        "suites",
        nargs="*",
        default=["sync", "webhooks"],
        choices=["sync", "webhooks", "graph", "scim", "agent", "fleet"],
    )
    parser.add_argument(
        "--users",
        default=None,
        help="Users (default 100000); a comma-separated list (10000,100000) measures growth, each size "
        "with a tenth as many groups and ten memberships per user. Run alone with fleet: users per "
        "directory (default 1000).",
    )
    parser.add_argument("--groups", type=int, default=10_000)
    parser.add_argument("--memberships", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--database-url", default=None, help="Deprecated alias of --postgres.")
    parser.add_argument(
        "--postgres",
        default=None,
        help="Also measure syncs into PostgreSQL at this SQLAlchemy URL (fresh schemas, dropped after).",
    )
    parser.add_argument(
        "--sqlite-max",
        type=int,
        default=100_000,
        help="Larger sizes are measured on PostgreSQL only (a 1,000,000-user SQLite file is about 16 GB).",
    )
    parser.add_argument(
        "--no-readers", action="store_true", help="Skip the API readers' latency during a first sync."
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results.json"))
    fleet_arguments(parser)
    return parser


def fleet_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--orgs", type=int, default=1000, help="fleet: organizations, one directory each.")
    parser.add_argument(
        "--fleet-users", type=int, default=None, help="fleet: users per directory (default 1000)."
    )
    parser.add_argument(
        "--workers", default="1,2,4", help="fleet: worker processes, e.g. 1,2,4 (one run each)."
    )
    parser.add_argument(
        "--days", type=int, default=1, help="fleet: 2 adds the next day's runs (unchanged re-syncs)."
    )
    parser.add_argument(
        "--orgs-per-server", type=int, default=100, help="fleet: organizations per slapd instance."
    )
    parser.add_argument("--big", type=int, default=0, help="fleet: add one directory of this many users.")
    parser.add_argument("--spread", type=float, default=60.0, help="fleet: ROSTER_SCHEDULE_SPREAD_SECONDS.")
    parser.add_argument(
        "--kill-worker",
        action="store_true",
        help="fleet: SIGKILL one worker once a third of the directories have synced (runs of 2+ workers).",
    )


def main() -> int:
    cli = parser()
    args = cli.parse_args()
    results: dict[str, object] = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform()}
    }
    if "sync" in args.suites:
        results |= sync_suite(args)
    if "graph" in args.suites:
        size = int(str(args.users or 100_000).split(",")[0])
        results[f"graph_{size}"] = graph.run(size, args.groups, args.memberships)
    if "agent" in args.suites:
        size = int(str(args.users or 100_000).split(",")[0])
        results[f"agent_{size}"] = agent.run(size, args.groups, args.memberships)
    if "scim" in args.suites:
        results["scim"] = scim.run(postgres_url=args.postgres)
    if "fleet" in args.suites:
        if not args.postgres:
            cli.error("fleet needs --postgres URL (workers share one PostgreSQL)")
        results["fleet"] = fleet.run(
            args.postgres,
            args.orgs,
            fleet_users(args),
            [int(n) for n in str(args.workers).split(",")],
            args.big,
            args.spread,
            args.kill_worker,
            args.orgs_per_server,
            args.days,
        )
    if "webhooks" in args.suites:
        results["webhooks"] = webhooks.run(args.endpoints, args.events, args.database_url)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    previous = json.loads(args.out.read_text()) if args.out.exists() else {}
    args.out.write_text(json.dumps({**previous, **results}, indent=2) + "\n")
    for key, value in results.items():
        if key != "machine":
            print(key, json.dumps(value, indent=2))
    return 0


def sync_suite(args: argparse.Namespace) -> dict[str, object]:
    """Each size of --users; with several sizes, each with a tenth as many groups and ten
    memberships per user, and how time and memory grow between them."""
    sizes = [int(n) for n in str(args.users or 100_000).split(",")]
    results: dict[str, object] = {}
    measured = {}
    for size in sizes:
        groups, memberships = (args.groups, args.memberships) if len(sizes) == 1 else (size // 10, size * 10)
        measured[size] = results[f"sync_{size}"] = sync.run(
            size,
            groups,
            memberships,
            args.repeat,
            args.database_url,
            postgres_url=args.postgres,
            sqlite=size <= args.sqlite_max,
            readers=not args.no_readers,
        )
    if len(sizes) > 1:
        results["sync_growth"] = sync.growth(measured)
    return results


def fleet_users(args: argparse.Namespace) -> int:
    """Users per fleet directory: --fleet-users, else --users when fleet runs alone, else 1,000."""
    if args.fleet_users is not None:
        return int(args.fleet_users)
    if args.users is not None and args.suites == ["fleet"]:
        return int(str(args.users).split(",")[0])
    return 1000


if __name__ == "__main__":
    sys.exit(main())
