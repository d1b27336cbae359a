"""What an enrolled agent keeps on its host (``--dir STATE_DIR``): its key (never sent anywhere),
its certificate and Roster's agent CA, the server, and its own connection to the directory, with
the bind password encrypted by a key of the state directory. Files are readable by their owner only."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from roster.connectors.base import ConfigError

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class Ldap:
    """The agent's own connection to the directory (the server never sees it)."""

    url: str
    bind_dn: str
    ca_file: str | None = None
    start_tls: bool = False
    insecure_skip_tls_verify: bool = False


@dataclass(frozen=True)
class AgentState:
    folder: Path
    server: str
    agent_id: str
    directory_id: str
    ldap: Ldap
    server_ca_file: str | None = None

    def key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key((self.folder / "agent.key").read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def bind_password(self) -> str:
        box = Fernet((self.folder / "state.key").read_bytes())
        return box.decrypt((self.folder / "bind-password.sealed").read_bytes()).decode()


def check_server(url: str) -> str:
    """https, or http only to a loopback server (tests and demos)."""
    parts = urlsplit(url)
    if parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in LOOPBACK):
        return url.rstrip("/")
    raise ConfigError(f"server: {url!r} must be https:// (plain http only to a loopback address)")


def _private(path: Path, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


def replace_key(folder: Path, key: ec.EllipticCurvePrivateKey, certificate: str | None) -> None:
    """Write a key (and its certificate) in place of the old ones, each file whole or not at all."""
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _private(folder / "agent.key.new", pem)
    if certificate is not None:
        _private(folder / "agent.crt.new", certificate.encode())
        os.replace(folder / "agent.crt.new", folder / "agent.crt")
    os.replace(folder / "agent.key.new", folder / "agent.key")


def save(state: AgentState, certificate: str, ca: str, bind_password: str) -> None:
    folder = state.folder
    secret = Fernet.generate_key()
    _private(folder / "state.key", secret)
    _private(folder / "bind-password.sealed", Fernet(secret).encrypt(bind_password.encode()))
    _private(folder / "agent.crt", certificate.encode())
    _private(folder / "ca.crt", ca.encode())
    data: dict[str, Any] = {k: v for k, v in asdict(state).items() if k != "folder"}
    _private(folder / "agent.json", json.dumps(data, indent=2).encode())


def load(folder: Path) -> AgentState:
    try:
        data = json.loads((folder / "agent.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"dir: {folder} holds no enrolled agent; run `roster agent enroll` first") from None
    return AgentState(
        folder=folder,
        server=data["server"],
        agent_id=data["agent_id"],
        directory_id=data["directory_id"],
        ldap=Ldap(**data["ldap"]),
        server_ca_file=data.get("server_ca_file"),
    )
