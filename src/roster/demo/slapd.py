"""Run a private OpenLDAP ``slapd`` on a loopback port, for the demo, the tests and benchmarks.

It uses Debian's ``slapd`` binary with a generated ``slapd.conf`` in its own
folder, an MDB database, and the ``syncprov`` overlay; nothing system-wide is
touched and it listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

SLAPD = shutil.which("slapd") or "/usr/sbin/slapd"
SLAPADD = shutil.which("slapadd") or "/usr/sbin/slapadd"
SCHEMAS = ("core", "cosine", "inetorgperson", "nis")


class SlapdError(RuntimeError):
    pass


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = 10.0) -> None:
    """Stop a server started in its own session: SIGTERM to its group, SIGKILL if it lingers."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Tls:
    cert_file: Path
    key_file: Path
    ca_file: Path


@dataclass
class Slapd:
    folder: Path
    suffix: str = "dc=example,dc=com"
    admin_password: str = "admin-secret"
    port: int = 0
    tls: Tls | None = None
    ldaps_port: int = 0
    syncprov: bool = True  # RFC 4533 provider, for incremental runs
    sessionlog: bool = True  # syncprov remembers deletes; without it, consumers get a present phase
    socket: Path | None = None  # listen on this local socket only (ldapi://), no TCP port at all
    _proc: subprocess.Popen[bytes] | None = None

    @property
    def admin_dn(self) -> str:
        return f"cn=admin,{self.suffix}"

    @property
    def url(self) -> str:
        if self.socket is not None:
            return "ldapi://" + quote(str(self.socket), safe="")
        return f"ldap://127.0.0.1:{self.port}"

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def conf(self) -> Path:
        return self.folder / "slapd.conf"

    def configure(self) -> None:
        if not Path(SLAPD).exists():
            raise SlapdError(f"slapd is not installed ({SLAPD}); install Debian's slapd and ldap-utils")
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        lines = [f"include /etc/ldap/schema/{name}.schema" for name in SCHEMAS]
        lines += [
            f"pidfile {self.folder / 'slapd.pid'}",
            f"argsfile {self.folder / 'slapd.args'}",
            "modulepath /usr/lib/ldap",
            "moduleload back_mdb",
            "sizelimit unlimited",
        ]
        if self.tls is not None:
            lines += [
                f"TLSCACertificateFile {self.tls.ca_file}",
                f"TLSCertificateFile {self.tls.cert_file}",
                f"TLSCertificateKeyFile {self.tls.key_file}",
            ]
        lines += [
            "database mdb",
            "maxsize 4294967296",
            f'suffix "{self.suffix}"',
            f'rootdn "{self.admin_dn}"',
            f"rootpw {self.admin_password}",
            f"directory {self.folder / 'data'}",
            "index objectClass eq",
            "index entryUUID eq",
            "index entryCSN eq",
            "index member,uniqueMember eq",  # incremental runs look up the groups listing an entry
        ]
        if self.syncprov:
            lines.insert(lines.index("moduleload back_mdb") + 1, "moduleload syncprov")
            lines += ["overlay syncprov", "syncprov-checkpoint 100 10"]
            if self.sessionlog:
                lines.append("syncprov-sessionlog 10000")
        self.conf.write_text("\n".join(lines) + "\n")

    def load(self, ldif: Path) -> None:
        """Bulk-load an LDIF file with slapadd (only while stopped)."""
        result = subprocess.run(
            [SLAPADD, "-q", "-f", str(self.conf), "-l", str(ldif)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise SlapdError(f"slapadd failed: {result.stderr.strip()[-2000:]}")

    def start(self, timeout: float = 20.0) -> None:
        if self.socket is not None:
            self._start([self.url + "/"], timeout)
            return
        if not self.port:
            self.port = free_port()
        urls = [self.url + "/"]
        if self.tls is not None:
            if not self.ldaps_port:
                self.ldaps_port = free_port()
            urls.append(self.ldaps_url + "/")
        self._start(urls, timeout)

    def _ready(self) -> bool:
        if self.socket is not None:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                probe.settimeout(0.2)
                return probe.connect_ex(str(self.socket)) == 0
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def _start(self, urls: list[str], timeout: float) -> None:
        with open(self.folder / "slapd.log", "ab") as log:
            self._proc = subprocess.Popen(
                [SLAPD, "-d", "0", "-f", str(self.conf), "-h", " ".join(urls)],
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise SlapdError(
                    f"slapd exited with {self._proc.returncode}; see {self.folder / 'slapd.log'}"
                )
            if self._ready():
                return
            time.sleep(0.05)
        self.stop()
        raise SlapdError(f"slapd did not listen on {' '.join(urls)} within {timeout} s")

    def stop(self) -> None:
        stop_process(self._proc)
        self._proc = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None
