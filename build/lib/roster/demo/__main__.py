"""``python -m roster.demo up|down FOLDER``: a demo slapd with a generated company directory.

``up`` writes the LDIF, loads it, starts slapd on a free loopback port and
prints the connection settings as JSON; ``down`` stops it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
from pathlib import Path

from roster.demo.generate import Spec, write_ldif
from roster.demo.slapd import Slapd, SlapdError


def up(folder: Path, users: int, groups: int, seed: int) -> int:
    down(folder)
    shutil.rmtree(folder / "slapd", ignore_errors=True)
    server = Slapd(folder / "slapd")
    server.configure()
    ldif = folder / "slapd" / "company.ldif"
    with ldif.open("w") as out:
        write_ldif(Spec(users=users, groups=groups, seed=seed), out)
    server.load(ldif)
    server.start()
    info = {
        "url": server.url,
        "bind_dn": server.admin_dn,
        "bind_password": server.admin_password,
        "search_path": "OU=People, DC=example, DC=com",
        "group_path": "OU=Groups, DC=example, DC=com",
    }
    (folder / "slapd" / "info.json").write_text(json.dumps(info))
    print(json.dumps(info))
    return 0


def down(folder: Path) -> int:
    pidfile = folder / "slapd" / "slapd.pid"
    if pidfile.exists():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        pidfile.unlink(missing_ok=True)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m roster.demo")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--users", type=int, default=1000)
    parser.add_argument("--groups", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    try:
        if args.action == "up":
            return up(args.folder, args.users, args.groups, args.seed)
        return down(args.folder)
    except SlapdError as exc:
        print(f"demo directory: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
