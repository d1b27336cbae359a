"""A Microsoft Entra login and Microsoft Graph emulator over HTTPS, for tests and benchmarks.

It follows Microsoft's published protocol pages (learn.microsoft.com):
- identity-platform "OAuth 2.0 client credentials flow" (``/{tenant}/oauth2/v2.0/token`` with a
  client secret or a certificate's signed client assertion, and its AADSTS error responses:
  90002 unknown tenant, 700016 unknown application, 7000215 wrong secret, 7000222 expired secret),
  and the OpenID Connect discovery document msal reads first; users' sign-in is ``graph_login``;
- Graph "Use delta query", "delta query for users/groups", "user: delta", "group: delta"
  (paging through ``@odata.nextLink`` to an ``@odata.deltaLink``, ``$select`` carried into both,
  ``members@delta``, ``@removed``; see ``graph_tenant`` for the state and its change journal), a
  delta token that has expired answering 410 Gone with ``syncStateNotFound``;
- "Microsoft Graph throttling guidance" (429 and 503 with or without ``Retry-After``) and
  "Microsoft Graph error responses" (the ``{"error": {"code", "message"}}`` body,
  ``Authorization_RequestDenied`` for a permission the application was not granted).

Pages hold ``page_size`` objects (tests use 2 or 3) and a group lists at most ``members_per_page``
members per appearance, so groups split across pages as they do in Entra.
"""

from __future__ import annotations

import html
import json
import re
import secrets
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import jwt
from cryptography import x509

from roster.demo.graph_login import SignIn, aad_error
from roster.demo.graph_tenant import Tenant
from roster.demo.pki import make_pki

ALL_PERMISSIONS = frozenset({"User.Read.All", "GroupMember.Read.All", "Group.Read.All"})
DELTA_NAMES = ("delta", "delta()", "microsoft.graph.delta", "microsoft.graph.delta()")


@dataclass
class App:
    """A registered application: its secret (and when it expires) or its certificate."""

    client_id: str
    secret: str | None = None
    secret_expired: bool = False
    certificate_pem: bytes | None = None
    permissions: frozenset[str] = ALL_PERMISSIONS


@dataclass
class _Paging:
    kind: str
    items: list[dict[str, Any]]
    version: int
    select: str | None


@dataclass
class Faults:
    """Answers to give instead of the next requests: (status, Retry-After header or None)."""

    queue: list[tuple[int, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[int, str | None] | None:
        with self.lock:
            return self.queue.pop(0) if self.queue else None


class GraphEmulator:
    def __init__(
        self,
        folder: Path,
        tenant: Tenant | None = None,
        *,
        page_size: int = 3,
        members_per_page: int = 3,
    ) -> None:
        self.tenant = tenant or Tenant()
        self.apps: dict[str, App] = {}
        self.page_size, self.members_per_page = page_size, members_per_page
        self.faults = Faults()
        self.requests: list[str] = []  # path and query of every Graph request, in order
        self.token_requests = 0
        self.delta_token_lifetime = 7 * 86400.0
        self.clock = time.time  # tests move it to expire delta tokens
        self._tokens: dict[str, tuple[str, float]] = {}  # access token -> (client id, expiry)
        self._pages: dict[str, _Paging] = {}
        self._deltas: dict[str, tuple[str, int, str | None, float]] = {}
        self._tls = make_pki(folder / "graph-pki", ("localhost",))
        self.sign_in = SignIn(self.tenant)
        # benchmarks: POST /_emulator/changes?count=N&seed=S calls this (None: no such endpoint)
        self.control: Callable[[int, int], int] | None = None
        self._server: ThreadingHTTPServer | None = None

    @property
    def ca_file(self) -> Path:
        return self._tls.ca_file

    @property
    def base(self) -> str:
        assert self._server is not None
        return f"https://localhost:{self._server.server_address[1]}"

    @property
    def graph_url(self) -> str:
        return f"{self.base}/v1.0"

    def register(self, app: App) -> App:
        self.apps[app.client_id] = app
        return app

    def start(self) -> GraphEmulator:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self._tls.cert_file, self._tls.key_file)
        server = _TlsServer(("127.0.0.1", 0), _handler(self), context)
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @contextmanager
    def running(self) -> Iterator[GraphEmulator]:
        self.start()
        try:
            yield self
        finally:
            self.stop()

    # Login
    def token(self, form: dict[str, str], tenant: str) -> tuple[int, dict[str, Any]]:
        self.token_requests += 1
        if tenant not in (self.tenant.tenant_id, "organizations"):
            return 400, aad_error("invalid_request", 90002, f"Tenant '{tenant}' not found.")
        app = self.apps.get(form.get("client_id", ""))
        if app is None:
            return 400, aad_error(
                "unauthorized_client", 700016, "Application was not found in the directory."
            )
        if form.get("grant_type") not in ("client_credentials", "authorization_code"):
            return 400, aad_error("unsupported_grant_type", 70003, "The grant type is not supported.")
        problem = self._client_problem(app, form, tenant)
        if problem is not None:
            return 401, problem
        if form["grant_type"] == "authorization_code":
            return self.sign_in.redeem(form, f"{self.base}/{self.tenant.tenant_id}/v2.0")
        access = secrets.token_urlsafe(32)
        self._tokens[access] = (app.client_id, time.time() + 3600)
        return 200, {
            "token_type": "Bearer",
            "expires_in": 3599,
            "ext_expires_in": 3599,
            "access_token": access,
        }

    def _client_problem(self, app: App, form: dict[str, str], tenant: str) -> dict[str, Any] | None:
        assertion = form.get("client_assertion")
        if assertion is not None and app.certificate_pem is not None:
            cert = x509.load_pem_x509_certificate(app.certificate_pem)
            try:
                jwt.decode(
                    assertion,
                    cert.public_key(),  # type: ignore[arg-type]
                    algorithms=["RS256", "PS256"],
                    audience=f"{self.base}/{tenant}/oauth2/v2.0/token",
                    options={"require": ["exp", "aud", "iss", "sub"]},
                )
            except jwt.PyJWTError as exc:
                return aad_error(
                    "invalid_client", 700027, f"Client assertion failed signature validation. ({exc})"
                )
            return None
        if app.secret is None or not secrets.compare_digest(form.get("client_secret", ""), app.secret):
            return aad_error(
                "invalid_client",
                7000215,
                "Invalid client secret provided. Ensure the secret being sent in the request is the "
                "client secret value, not the client secret ID.",
            )
        if app.secret_expired:
            return aad_error("invalid_client", 7000222, "The provided client secret keys are expired.")
        return None

    def discovery(self, tenant: str) -> dict[str, Any]:
        issuer = f"{self.base}/{tenant}/v2.0"
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{self.base}/{tenant}/oauth2/v2.0/authorize",
            "token_endpoint": f"{self.base}/{tenant}/oauth2/v2.0/token",
            "jwks_uri": f"{self.base}/{tenant}/discovery/v2.0/keys",
            "response_types_supported": ["code", "id_token", "code id_token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "tenant_region_scope": "EU",
        }

    # Graph
    def graph(self, path: str, query: dict[str, str], bearer: str | None) -> tuple[int, Any, dict[str, str]]:
        self.requests.append(path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""))
        fault = self.faults.take()
        if fault is not None:
            status, retry_after = fault
            headers = {"Retry-After": retry_after} if retry_after is not None else {}
            return (
                status,
                _error("TooManyRequests" if status == 429 else "ServiceUnavailable", "Try later."),
                headers,
            )
        known = self._tokens.get(bearer or "")
        if known is None or known[1] < time.time():
            return 401, _error("InvalidAuthenticationToken", "Access token is empty or invalid."), {}
        app = self.apps[known[0]]
        parts = [p for p in path.split("/") if p]
        if len(parts) < 2 or parts[0] != "v1.0" or parts[1] not in ("users", "groups"):
            return (
                404,
                _error("Request_ResourceNotFound", f"Resource not found for the segment '{path}'."),
                {},
            )
        kind = parts[1]
        needed = "User.Read.All" if kind == "users" else "GroupMember.Read.All"
        if needed not in app.permissions and not (kind == "groups" and "Group.Read.All" in app.permissions):
            return (
                403,
                _error("Authorization_RequestDenied", "Insufficient privileges to complete the operation."),
                {},
            )
        if len(parts) in (4, 5) and kind == "users" and parts[3] == "memberOf":
            return self._member_of(parts, query)
        if len(parts) == 3 and parts[2] in DELTA_NAMES:
            return self._delta(kind, query)
        if len(parts) == 3:
            item = self.tenant.visible(kind, parts[2])
            if item is None:
                return 404, _error("Request_ResourceNotFound", f"Resource '{parts[2]}' does not exist."), {}
            return (
                200,
                {
                    "@odata.context": f"{self.graph_url}/$metadata#{kind}/$entity",
                    **_select(item, query.get("$select")),
                },
                {},
            )
        top = int(query.get("$top", "100"))
        wanted = _ids_filter(query.get("$filter"))
        if wanted is not None and len(wanted) > 15:
            return (
                400,
                _error("Request_UnsupportedQuery", "Too many values in an 'in' filter (at most 15)."),
                {},
            )
        if wanted is not None:
            items = [i for i in (self.tenant.visible(kind, w) for w in wanted) if i is not None]
        else:
            items = self.tenant.full_round(kind)[:top]
        values = [
            _select({k: v for k, v in i.items() if k != "members@delta"}, query.get("$select")) for i in items
        ]
        return 200, {"@odata.context": f"{self.graph_url}/$metadata#{kind}", "value": values}, {}

    def _member_of(self, parts: list[str], query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        """``/users/{id}/memberOf[/microsoft.graph.group]``: the groups listing the user directly."""
        if self.tenant.visible("users", parts[2]) is None:
            return 404, _error("Request_ResourceNotFound", f"Resource '{parts[2]}' does not exist."), {}
        groups = self.tenant.member_of(parts[2])
        start = int(query.get("$skiptoken", "0"))
        page = groups[start : start + self.page_size]
        body: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#directoryObjects",
            "value": [{"@odata.type": "#microsoft.graph.group", "id": g} for g in page],
        }
        if start + self.page_size < len(groups):
            path = "/".join(parts[1:])
            body["@odata.nextLink"] = f"{self.graph_url}/{path}?$skiptoken={start + self.page_size}"
        return 200, body, {}

    def _delta(self, kind: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        if "$skiptoken" in query:
            paging = self._pages.pop(query["$skiptoken"], None)
            if paging is None:
                return 400, _error("badRequest", "Invalid skip token."), {}
        elif "$deltatoken" in query:
            state = self._deltas.get(query["$deltatoken"])
            if state is None or state[0] != kind or self.clock() - state[3] > self.delta_token_lifetime:
                return 410, _error("syncStateNotFound", "The sync state is not found or has expired."), {}
            _, version, select, _ = state
            paging = _Paging(
                kind, self._split(self.tenant.changes_since(kind, version)), self.tenant.version, select
            )
        else:
            version = self.tenant.version
            paging = _Paging(kind, self._split(self.tenant.full_round(kind)), version, query.get("$select"))
        page, rest = paging.items[: self.page_size], paging.items[self.page_size :]
        body: dict[str, Any] = {
            "@odata.context": f"{self.graph_url}/$metadata#{kind}",
            "value": [_select(item, paging.select) for item in page],
        }
        if rest:
            token = secrets.token_urlsafe(12)
            self._pages[token] = _Paging(kind, rest, paging.version, paging.select)
            body["@odata.nextLink"] = f"{self.graph_url}/{kind}/delta?$skiptoken={token}"
        else:
            token = secrets.token_urlsafe(12)
            self._deltas[token] = (kind, paging.version, paging.select, self.clock())
            body["@odata.deltaLink"] = f"{self.graph_url}/{kind}/delta?$deltatoken={token}"
        return 200, body, {}

    def _split(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A group with more members than a page shows appears again, later, with the rest."""
        first: list[dict[str, Any]] = []
        later: list[dict[str, Any]] = []
        size = self.members_per_page
        for item in items:
            members = item.get("members@delta")
            if members is None or len(members) <= size:
                first.append(item)
                continue
            first.append({**item, "members@delta": members[:size]})
            for start in range(size, len(members), size):
                later.append({"id": item["id"], "members@delta": members[start : start + size]})
        return first + later


def _ids_filter(text: str | None) -> list[str] | None:
    """The ids of ``id in ('a','b')`` (the one ``$filter`` form the emulator knows)."""
    if not text:
        return None
    match = re.fullmatch(r"\s*id\s+in\s*\((.*)\)\s*", text)
    if match is None:
        return []
    return [v.strip().strip("'") for v in match.group(1).split(",") if v.strip()]


class _TlsServer(ThreadingHTTPServer):
    """TLS per connection, in the connection's thread: a client that gives up during the handshake
    costs its own socket (closed here), never the accept loop or a leaked socket."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any, context: ssl.SSLContext) -> None:
        super().__init__(address, handler)
        self.context = context

    def finish_request(self, request: Any, client_address: Any) -> None:
        try:
            tls = self.context.wrap_socket(request, server_side=True)
        except OSError:
            request.close()
            return
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def _select(item: dict[str, Any], select: str | None) -> dict[str, Any]:
    """The selected properties (``id`` always); a whole object lists every one, null when unset,
    as Graph does; a partial one (an update in a later round) only what it carries."""
    shown = {k: v for k, v in item.items() if not k.startswith("_")}
    if not select:
        return shown
    wanted = {s.strip() for s in select.split(",")} | {"id", "@removed"}
    out = {k: v for k, v in shown.items() if k in wanted or (k == "members@delta" and "members" in wanted)}
    if item.get("_complete") and "@removed" not in item:
        out.update({k: None for k in wanted - {"members", "@removed"} if k not in out})
    return out


def _error(code: str, message: str) -> dict[str, Any]:
    return {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"date": formatdate(usegmt=True), "request-id": secrets.token_hex(8)},
        }
    }


def _handler(emulator: GraphEmulator) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body leave at once (no delayed-ACK stall)

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            parts = [p for p in url.path.split("/") if p]
            if url.path.endswith("/.well-known/openid-configuration") and parts:
                self._send(200, emulator.discovery(parts[0]))
            elif parts[1:] == ["oauth2", "v2.0", "authorize"] and parts[0] == emulator.tenant.tenant_id:
                self._answer_sign_in(query)
            elif parts[1:] == ["discovery", "v2.0", "keys"]:
                self._send(200, emulator.sign_in.jwks())
            elif url.path == "/common/discovery/instance":
                self._send(
                    200,
                    {"tenant_discovery_endpoint": query.get("authorization_endpoint", ""), "metadata": []},
                )
            else:
                auth = self.headers.get("Authorization", "")
                bearer = auth[7:] if auth.startswith("Bearer ") else None
                status, body, headers = emulator.graph(url.path, query, bearer)
                self._send(status, body, headers)

        def _answer_sign_in(self, query: dict[str, str]) -> None:
            target, params = emulator.sign_in.authorize(query)
            if query.get("response_mode") == "form_post":
                fields = "".join(
                    f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>'
                    for k, v in params.items()
                )
                page = (
                    f'<html><body onload="document.forms[0].submit()"><form method="POST" '
                    f'action="{html.escape(target)}">{fields}</form></body></html>'
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(page)))
                self.end_headers()
                self.wfile.write(page)
                return
            self.send_response(302)
            self.send_header("Location", f"{target}?{urlencode(params)}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
            parts = [p for p in url.path.split("/") if p]
            if url.path == "/_emulator/changes" and emulator.control is not None:
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                self._send(200, {"changed": emulator.control(int(query["count"]), int(query["seed"]))})
            elif len(parts) == 4 and parts[1:] == ["oauth2", "v2.0", "token"]:
                status, body = emulator.token(form, parts[0])
                self._send(status, body)
            else:
                self._send(404, _error("NotFound", url.path))

    return Handler


def retry_after_date(seconds: float) -> str:
    """``Retry-After`` as an HTTP date ``seconds`` from now."""
    return formatdate(time.time() + seconds, usegmt=True)
