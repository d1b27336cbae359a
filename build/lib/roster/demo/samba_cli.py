"""``python -m roster.demo.samba_cli up|down FOLDER``: a Samba AD DC to poke at by hand."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from roster.demo.samba import SambaDC, SambaError, missing_requirements


def main() -> int:
    parser = argparse.ArgumentParser(prog="scripts/samba-dc")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("folder", type=Path, nargs="?", default=Path(".samba-dc"))
    args = parser.parse_args()
    dc = SambaDC(args.folder.resolve())
    try:
        if args.action == "down":
            dc.stop()
            return 0
        why = missing_requirements()
        if why:
            print(f"cannot start a Samba DC: {why}", file=sys.stderr)
            return 1
        dc.provision()
        dc.start()
        dc._proc = None  # keep it running after this command exits
    except SambaError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    print(
        json.dumps(
            {
                "url": dc.url,
                "ldaps_url": dc.ldaps_url,
                "ca_file": str(dc.ca_file),
                "bind_dn": dc.admin_dn,
                "bind_password": dc.admin_password,
                "base_dn": dc.base_dn,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
