"""``roster agent``, on the host next to the directory: enrol with a one-time code, then long-poll
the server for tasks, run them with the LDAP connector, and upload what was read. It only ever
connects out, over HTTPS (``HTTPS_PROXY`` is honoured), and signs every request with its own key."""

from __future__ import annotations

import gzip
import json
import logging
import random
import socket
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from roster import __version__
from roster.agent import proof
from roster.agent.state import AgentState, Ldap, check_server, replace_key, save
from roster.connectors.base import ConfigError, ConnectorError
from roster.settings import Settings
from roster.sources.ldap import ldap_config
from roster.wire import encode_batch

log = logging.getLogger(__name__)
CHUNK = 512 * 1024  # below the server's request size limit
HEARTBEAT = 30.0
RENEW_BEFORE = timedelta(days=10)  # certificates last 30 days


def _verify(server_ca_file: str | None) -> Any:
    return server_ca_file or True


def enroll(
    server: str, code: str, folder: Path, ldap: Ldap, bind_password: str, server_ca_file: str | None
) -> AgentState:
    server = check_server(server)
    if not bind_password:
        raise ConfigError("bind_password: give --bind-password-file FILE")
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key, csr = _key_and_csr()
    replace_key(folder, key, None)
    body = {
        "code": code,
        "csr": csr,
        "hostname": socket.gethostname(),
        "version": __version__,
    }
    try:
        response = httpx.post(
            f"{server}/agent/v1/enroll", json=body, verify=_verify(server_ca_file), timeout=30
        )
    except httpx.TransportError as exc:
        raise ConfigError(f"server: cannot reach {server}: {exc}") from None
    if response.status_code != 201:
        raise ConfigError(_message(response))
    answer = response.json()
    state = AgentState(folder, server, answer["agent_id"], answer["directory_id"], ldap, server_ca_file)
    save(state, answer["certificate"], answer["ca"], bind_password)
    return state


def _key_and_csr() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "roster agent")]))
        .sign(key, hashes.SHA256())
    )
    return key, csr.public_bytes(serialization.Encoding.PEM).decode()


def _message(response: httpx.Response) -> str:
    try:
        return str(response.json().get("message") or response.text)
    except ValueError:
        return f"the server answered {response.status_code}"


class Agent:
    def __init__(self, state: AgentState, settings: Settings) -> None:
        self.state, self.settings = state, settings
        self.key = state.key()
        self.http = httpx.Client(base_url=state.server, verify=_verify(state.server_ca_file), timeout=60)
        self.stop = threading.Event()
        self.last_error: str | None = None

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, body: bytes = b"", timeout: float = 60) -> httpx.Response:
        headers = proof.sign(self.key, self.state.agent_id, method, path, body)
        headers[proof.VERSION] = __version__
        response = self.http.request(method, path, content=body, headers=headers, timeout=timeout)
        if response.status_code in (401, 403):
            raise ConfigError(f"the server refused this agent: {_message(response)}")
        return response

    def renew_if_due(self, before: timedelta = RENEW_BEFORE) -> bool:
        """A new key and certificate when the current one ends within ``before``."""
        current = x509.load_pem_x509_certificate((self.state.folder / "agent.crt").read_bytes())
        if current.not_valid_after_utc - datetime.now(UTC) > before:
            return False
        key, csr = _key_and_csr()
        answer = self.request("POST", "/agent/v1/renew", json.dumps({"csr": csr}).encode())
        answer.raise_for_status()
        replace_key(self.state.folder, key, answer.json()["certificate"])
        self.key = key
        log.info("renewed this agent's certificate")
        return True

    def heartbeat(self) -> None:
        body = {"hostname": socket.gethostname(), "version": __version__, "error": self.last_error}
        self.request("POST", "/agent/v1/heartbeat", json.dumps(body).encode()).raise_for_status()

    def next_task(self, wait: int = 20) -> dict[str, Any] | None:
        response = self.request("GET", f"/agent/v1/tasks/next?wait={wait}", timeout=wait + 30)
        response.raise_for_status()
        return None if response.status_code == 204 else dict(response.json())

    def run_forever(self) -> None:
        """Heartbeats every 30 s, tasks as they come; reconnects with backoff and jitter."""
        failures = 0
        beat = threading.Thread(target=self._beat, name="roster-agent-heartbeat", daemon=True)
        beat.start()
        while not self.stop.is_set():
            try:
                self.renew_if_due()
                task = self.next_task()
                failures = 0
                if task is not None:
                    self.handle(task)
            except (httpx.TransportError, httpx.HTTPStatusError) as exc:  # unreachable, or a 5xx
                failures += 1
                delay = min(60.0, 0.5 * 2**failures) * random.uniform(0.5, 1.0)
                log.warning("server unavailable (%s); retrying in %.1f s", exc, delay)
                self.stop.wait(delay)

    def _beat(self) -> None:
        while not self.stop.is_set():
            try:
                self.heartbeat()
            except (httpx.HTTPError, ConfigError) as exc:
                log.warning("heartbeat failed: %s", exc)
            self.stop.wait(HEARTBEAT)

    def connector(self, task: dict[str, Any]) -> Any:
        from roster.connectors.ldap.connector import LdapConnector

        return LdapConnector(ldap_config(self._directory(task), self.state.bind_password(), self.settings))

    def _directory(self, task: dict[str, Any]) -> dict[str, Any]:
        """What the server says to read, with this host's own connection to the directory."""
        given = task["payload"].get("directory") or {"type": "ldap", "config": {"search_paths": []}}
        ldap = self.state.ldap
        config = {
            **given["config"],
            "url": ldap.url,
            "bind_dn": ldap.bind_dn,
            "ca_file": ldap.ca_file,
            "start_tls": ldap.start_tls,
            "insecure_skip_tls_verify": ldap.insecure_skip_tls_verify,
        }
        return {"type": given["type"], "config": config}

    def handle(self, task: dict[str, Any]) -> None:
        """Run one task, holding its lease while it runs."""
        done = threading.Event()
        keeper = threading.Thread(
            target=self._hold, args=(task, done), name="roster-agent-lease", daemon=True
        )
        keeper.start()
        try:
            self._run(task)
        finally:
            done.set()

    def _hold(self, task: dict[str, Any], done: threading.Event) -> None:
        period = max(1.0, float(task.get("lease_seconds") or 120) / 3)
        while not done.wait(period):
            try:
                self.request("POST", f"/agent/v1/tasks/{task['id']}/renew").raise_for_status()
            except (httpx.HTTPError, ConfigError) as exc:
                log.warning("could not renew task %s: %s", task["id"], exc)

    def _login(self, task: dict[str, Any]) -> None:
        from roster.agent.sealing import open_sealed
        from roster.connectors.ldap.bind import verify_password

        payload = task["payload"]
        config = ldap_config(self._directory(task), self.state.bind_password(), self.settings)
        outcome = verify_password(config, payload["name"], open_sealed(self.key, payload["sealed"]))
        self.finish(task["id"], "done", {"reason": str(outcome.reason), "detail": outcome.detail})

    def _run(self, task: dict[str, Any]) -> None:
        task_id, kind, payload = task["id"], task["kind"], task["payload"]
        try:
            if kind == "login":
                self._login(task)
                return
            connector = self.connector(task)
            if kind == "test":
                report = connector.test()
                paths = [{"path": p.path, "ok": p.ok, "detail": p.detail} for p in report.paths]
                result = {"ok": report.ok, "server": report.server, "detail": report.detail, "paths": paths}
                self.finish(task_id, "done", result)
            elif kind == "incremental":
                delta = connector.changes(payload["cursor"])
                if delta is None:
                    self.finish(task_id, "uploaded", {"full_needed": True})
                else:
                    self.upload(task_id, encode_batch(delta))
            else:
                self.upload(task_id, encode_batch(connector.snapshot(None, payload.get("previous") or {})))
            self.last_error = None
        except ConnectorError as exc:
            self.last_error = str(exc)
            self.finish(task_id, "failed", {"error": str(exc), "reason": str(exc.reason)})
        except (httpx.HTTPError, ConfigError):
            raise  # the server is away or refuses this agent: run_forever decides
        except Exception as exc:  # a bug must not stop the agent, nor leave the server waiting
            log.exception("task %s failed", task_id)
            self.last_error = f"internal error in the agent: {exc!r}"
            self.finish(task_id, "failed", {"error": self.last_error})

    def upload(self, task_id: str, data: bytes) -> None:
        """The batch, compressed, in chunks; after a dropped connection it resumes where the
        server's copy ends."""
        packed = gzip.compress(data, compresslevel=1)  # the fastest level: most of the gain
        attempts = 0
        while True:
            try:
                offset = int(self.request("GET", f"/agent/v1/tasks/{task_id}/upload").json()["size"])
                while offset < len(packed):
                    chunk = packed[offset : offset + CHUNK]
                    answer = self.request("PUT", f"/agent/v1/tasks/{task_id}/upload?offset={offset}", chunk)
                    answer.raise_for_status()
                    offset = int(answer.json()["size"])
                self.finish(task_id, "uploaded", None)
                return
            except httpx.TransportError as exc:
                attempts += 1
                if attempts > 8:
                    raise
                delay = min(30.0, 0.5 * 2**attempts) * random.uniform(0.5, 1.0)
                log.warning("upload interrupted (%s); resuming in %.1f s", exc, delay)
                self.stop.wait(delay)

    def finish(self, task_id: str, status: str, result: dict[str, Any] | None) -> None:
        body = json.dumps({"status": status, "result": result}).encode()
        self.request("POST", f"/agent/v1/tasks/{task_id}/finish", body).raise_for_status()
