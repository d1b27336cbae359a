"""A real Active Directory domain controller (Samba 4, AD DC role) on loopback, for tests and developers.

``SambaDC.provision()`` creates a domain in its own folder (``EXAMPLE.LOCAL``),
with a certificate from a throw-away CA (SAN 127.0.0.1 and localhost) so that
LDAPS verification stays on. ``start()`` runs ``samba`` in the foreground on
127.0.0.1 only. Samba needs root and the fixed ports 389, 636, 3268 and 3269,
so one instance runs per machine. Bulk fixtures go in with ``ldbadd`` straight
into the database (one transaction: hundreds of objects per second, where adds
over LDAP manage about 90).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from roster.demo.pki import make_pki
from roster.demo.slapd import stop_process

SAMBA = shutil.which("samba") or "/usr/sbin/samba"
SAMBA_TOOL = shutil.which("samba-tool") or "/usr/bin/samba-tool"
LDBADD = shutil.which("ldbadd") or "/usr/bin/ldbadd"
PORTS = (389, 636, 3268, 3269)


class SambaError(RuntimeError):
    pass


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def missing_requirements() -> str | None:
    """Why a Samba DC cannot run here, or None."""
    for tool in (SAMBA, SAMBA_TOOL, LDBADD):
        if not Path(tool).exists():
            return (
                f"{tool} is not installed (Debian packages samba, samba-ad-dc, samba-ad-provision, ldb-tools)"
            )
    if os.geteuid() != 0:
        return "Samba's AD DC needs root"
    busy = [p for p in PORTS if port_in_use(p)]
    if busy:
        return f"port(s) {', '.join(map(str, busy))} on 127.0.0.1 are in use (one Samba DC per machine)"
    return None


@dataclass
class SambaDC:
    folder: Path
    realm: str = "EXAMPLE.LOCAL"
    domain: str = "EXAMPLE"
    admin_password: str = "Roster-Admin-1!"
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def base_dn(self) -> str:
        return ",".join(f"DC={part}" for part in self.realm.lower().split("."))

    @property
    def admin_dn(self) -> str:
        return f"CN=Administrator,CN=Users,{self.base_dn}"

    @property
    def admin_upn(self) -> str:
        return f"Administrator@{self.realm.lower()}"

    @property
    def url(self) -> str:
        return "ldap://127.0.0.1:389"

    @property
    def ldaps_url(self) -> str:
        return "ldaps://127.0.0.1:636"

    @property
    def conf(self) -> Path:
        return self.folder / "etc" / "smb.conf"

    @property
    def ca_file(self) -> Path:
        return self.folder / "tls" / "ca.pem"

    @property
    def sam(self) -> Path:
        return self.folder / "private" / "sam.ldb"

    def provision(self) -> None:
        if self.folder.exists():
            shutil.rmtree(self.folder)
        self.folder.mkdir(parents=True)
        result = subprocess.run(
            [
                SAMBA_TOOL,
                "domain",
                "provision",
                f"--realm={self.realm}",
                f"--domain={self.domain}",
                "--server-role=dc",
                "--dns-backend=NONE",
                "--use-rfc2307",
                f"--adminpass={self.admin_password}",
                f"--targetdir={self.folder}",
                "--option=interfaces = lo",
                "--option=bind interfaces only = yes",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SambaError(f"samba-tool domain provision failed: {result.stderr.strip()[-2000:]}")
        tls = make_pki(self.folder / "tls", ("localhost", "dc1.example.local"))
        (self.folder / "run").mkdir(exist_ok=True)
        (self.folder / "log").mkdir(exist_ok=True)
        extra = [
            f"pid directory = {self.folder / 'run'}",
            f"log file = {self.folder / 'log' / 'log.%m'}",
            "server services = ldap",
            "ldap server require strong auth = no",  # plain-LDAP tests only; LDAPS is tested too
            "tls enabled = yes",
            f"tls keyfile = {tls.key_file}",
            f"tls certfile = {tls.cert_file}",
            f"tls cafile = {tls.ca_file}",
        ]
        text = self.conf.read_text()
        text = re.sub(r"^\s*log file = .*$", "", text, flags=re.M)
        text = text.replace("[global]\n", "[global]\n" + "".join(f"\t{line}\n" for line in extra), 1)
        self.conf.write_text(text)

    def start(self, timeout: float = 60.0) -> None:
        with open(self.folder / "samba.out", "ab") as log:
            self._proc = subprocess.Popen(
                [SAMBA, "-s", str(self.conf), "--foreground", "--no-process-group"],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SambaError(
                    f"samba exited with {self._proc.returncode}; see {self.folder / 'samba.out'}"
                )
            if port_in_use(389) and port_in_use(636):
                return
            time.sleep(0.1)
        self.stop()
        raise SambaError(f"samba did not listen on 389/636 within {timeout} s")

    def stop(self) -> None:
        stop_process(self._proc, grace=15)
        self._proc = None
        pidfile = self.folder / "run" / "samba.pid"
        if pidfile.exists():  # started by another process (scripts/samba-dc up)
            with contextlib.suppress(ProcessLookupError, ValueError, PermissionError):
                os.killpg(int(pidfile.read_text().strip()), signal.SIGTERM)
            for _ in range(100):
                if not port_in_use(389):
                    break
                time.sleep(0.1)

    def ldbadd(self, ldif: str) -> None:
        """Add entries straight into the directory database, in one transaction."""
        path = self.folder / "bulk.ldif"
        path.write_text(ldif)
        result = subprocess.run(
            [LDBADD, "-H", str(self.sam), str(path)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise SambaError(f"ldbadd failed: {(result.stderr or result.stdout).strip()[-2000:]}")

    def samba_tool(self, *args: str) -> str:
        result = subprocess.run(
            [SAMBA_TOOL, *args, "-H", str(self.sam)], capture_output=True, text=True, check=False
        )
        if result.returncode != 0:
            raise SambaError(f"samba-tool {' '.join(args[:2])} failed: {result.stderr.strip()[-2000:]}")
        return result.stdout
