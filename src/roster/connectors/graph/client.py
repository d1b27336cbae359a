"""Graph over HTTPS: tokens from msal (client credentials, cached until they expire), throttling
and transient faults retried as Microsoft's throttling guidance asks, errors named precisely.

- 429, 503 and 504 wait for ``Retry-After`` (seconds, fractional seconds or an HTTP date), else
  back off exponentially with jitter; after ``max_retries`` the run fails (applying nothing).
- 401 and 403 are credentials or consent problems: ``invalid_credentials``, with the permission
  the request needed when Graph says the privileges are insufficient.
- 410 (``syncStateNotFound``, an expired delta token...) is ``DeltaExpired``: a full run follows.
"""

from __future__ import annotations

import datetime
import email.utils
import functools
import hashlib
import random
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import msal
import requests

from roster.connectors.base import ConnectorError, FailureReason
from roster.connectors.graph.config import GraphConfig

RETRIED = frozenset({429, 503, 504})
_TOKENS: dict[str, tuple[str, float]] = {}  # sign-in (hashed) -> (access token, expiry)
_TOKENS_LOCK = threading.Lock()


class DeltaExpired(Exception):
    """The delta link can no longer be used (410 Gone): read everything again."""


class GraphClient:
    def __init__(self, config: GraphConfig, sleep: Callable[[float], None] = time.sleep) -> None:
        self.config = config
        self._sleep = sleep
        self._app: msal.ConfidentialClientApplication | None = None
        verify: ssl.SSLContext | bool = True
        if config.ca_file:
            verify = ssl.create_default_context()
            verify.load_verify_locations(config.ca_file)
        self._http = httpx.Client(timeout=config.timeout, verify=verify)
        self._session = _session(config)

    def close(self) -> None:
        self._http.close()
        self._session.close()

    # Tokens
    def token(self, fresh: bool = False) -> str:
        """An access token for Graph: kept (in this process's memory) until 5 minutes before it
        expires, so that frequent runs do not sign in each time; ``fresh`` signs in anyway (a
        connection test must see a secret that no longer works)."""
        key = self._token_key()
        with _TOKENS_LOCK:
            kept = _TOKENS.get(key)
        if kept is not None and not fresh and kept[1] > time.time() + 300:
            return kept[0]
        try:
            result = self._msal().acquire_token_for_client(scopes=[self._scope()])
        except requests.RequestException as exc:
            raise _unreachable(self.config.login_url, exc) from None
        if "access_token" not in result:
            raise _login_error(result, self.config)
        token = str(result["access_token"])
        with _TOKENS_LOCK:
            _TOKENS[key] = (token, time.time() + float(result.get("expires_in", 0)))
        return token

    def _token_key(self) -> str:
        """Which sign-in a token belongs to (a changed secret or host is another sign-in)."""
        cfg, cred = self.config, self.config.credential
        parts = (
            cfg.login_url,
            cfg.tenant_id,
            cfg.client_id,
            self._scope(),
            cred.secret,
            cred.private_key_pem,
        )
        return hashlib.sha256(repr(parts).encode()).hexdigest()

    def _scope(self) -> str:
        """``https://<graph host>/.default``: the application permissions granted to the app."""
        scheme, _, host = self.config.graph_url.split("/")[:3]
        return f"{scheme}//{host}/.default"

    def app(self) -> msal.ConfidentialClientApplication:
        """The msal application (its token cache lives as long as this client)."""
        return self._msal()

    def _msal(self) -> msal.ConfidentialClientApplication:
        if self._app is None:
            cfg = self.config
            credential: Any = cfg.credential.secret
            if cfg.credential.private_key_pem:
                credential = {
                    "private_key": cfg.credential.private_key_pem,
                    "public_certificate": cfg.credential.certificate_pem,
                }
            try:
                self._app = msal.ConfidentialClientApplication(
                    cfg.client_id,
                    client_credential=credential,
                    authority=f"{cfg.login_url}/{cfg.tenant_id}",
                    http_client=self._session,
                    instance_discovery=False,  # the login host is given (national clouds, proxies)
                    timeout=cfg.timeout,
                )
            except ValueError as exc:  # the authority's discovery document was refused
                raise _unreachable(cfg.login_url, exc) from None
            except requests.RequestException as exc:
                raise _unreachable(cfg.login_url, exc) from None
        return self._app

    # Requests
    def get(self, url: str, params: dict[str, str] | None = None) -> dict[str, Any]:
        """GET a Graph URL (absolute, or relative to the Graph root); the decoded JSON body."""
        if not url.startswith("https://"):
            url = f"{self.config.graph_url}/{url.lstrip('/')}"
        elif not url.startswith(f"{self.config.graph_url}/"):  # a token goes to the Graph host only
            raise ConnectorError(
                FailureReason.CONFIGURATION, f"graph_url: a link to {url.split('?')[0]!r} is not under it"
            )
        attempt = 0
        while True:
            response = self._send(url, params)
            if response.status_code not in RETRIED or attempt >= self.config.max_retries:
                return _checked(response, url)
            self._sleep(wait_for(response, attempt))
            attempt += 1

    def _send(self, url: str, params: dict[str, str] | None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token()}", "Accept": "application/json"}
        try:
            return self._http.get(url, params=params, headers=headers)
        except httpx.TimeoutException as exc:
            raise ConnectorError(FailureReason.TIMEOUT, f"Graph did not answer in time: {exc}") from None
        except httpx.TransportError as exc:
            raise _unreachable(url, exc) from None


def _session(config: GraphConfig) -> requests.Session:
    """msal's HTTP session. The CA goes on every request: requests lets REQUESTS_CA_BUNDLE in the
    environment override a session's own ``verify``."""
    session = requests.Session()
    session.request = functools.partial(  # type: ignore[method-assign]
        session.request, verify=config.ca_file or True, timeout=config.timeout
    )
    return session


MAX_WAIT = 120.0  # seconds: a longer Retry-After fails the run (its cursor stays) rather than a worker


def wait_for(response: httpx.Response, attempt: int) -> float:
    """Seconds to wait before retrying: ``Retry-After`` when given (seconds, fractional seconds or
    an HTTP date), else 2^attempt with jitter; never more than ``MAX_WAIT``."""
    header = (response.headers.get("Retry-After") or "").strip()
    seconds: float | None = None
    if header:
        try:
            seconds = float(header)
        except ValueError:
            seconds = _date_seconds(header)
    if seconds is None or seconds != seconds:  # missing, unreadable, or NaN
        seconds = min(60.0, 2.0**attempt) * (0.5 + random.random() / 2)
    return min(MAX_WAIT, max(0.0, seconds))


def _date_seconds(header: str) -> float | None:
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000": UTC without saying so
        when = when.replace(tzinfo=datetime.UTC)
    return when.timestamp() - time.time()


def _checked(response: httpx.Response, url: str) -> dict[str, Any]:
    if response.status_code == 200:
        body: dict[str, Any] = response.json()
        return body
    code, message = _graph_error(response)
    if response.status_code == 410 or code in ("syncStateNotFound", "syncStateInvalid", "resyncRequired"):
        raise DeltaExpired(f"{code}: {message}")
    if response.status_code == 403:
        needed = "User.Read.All" if "/users" in url else "GroupMember.Read.All"
        raise ConnectorError(
            FailureReason.INVALID_CREDENTIALS,
            f"Graph refused {url.split('?')[0]}: {message} The application needs the {needed} "
            "application permission, with an administrator's consent.",
            code,
        )
    if response.status_code == 401:
        raise ConnectorError(FailureReason.INVALID_CREDENTIALS, f"Graph refused the token: {message}", code)
    raise ConnectorError(
        FailureReason.SEARCH_FAILED, f"Graph answered {response.status_code} ({code}): {message}", code
    )


def _graph_error(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return str(response.status_code), response.text[:200]
    return str(error.get("code", response.status_code)), str(error.get("message", ""))


def _login_error(result: dict[str, Any], config: GraphConfig) -> ConnectorError:
    codes = result.get("error_codes") or []
    description = str(result.get("error_description", result.get("error", "")))
    first = description.split(" Trace ID:", 1)[0]
    if 90002 in codes or 900023 in codes:
        text = f"tenant_id: tenant {config.tenant_id!r} was not found at {config.login_url} ({first})"
    elif 700016 in codes:
        text = f"client_id: application {config.client_id!r} is not registered in the tenant ({first})"
    elif 7000222 in codes:
        text = f"client_secret: the secret has expired; make a new one in the app registration ({first})"
    elif 7000215 in codes:
        text = f"client_secret: the secret is wrong (give its value, not its id) ({first})"
    else:
        text = f"sign-in to {config.login_url} failed: {first}"
    return ConnectorError(FailureReason.INVALID_CREDENTIALS, text, str(codes[0]) if codes else "")


def _unreachable(url: str, exc: Exception) -> ConnectorError:
    text = str(exc)
    reason = (
        FailureReason.TLS
        if "CERTIFICATE" in text.upper() or "SSL" in text.upper()
        else FailureReason.UNREACHABLE
    )
    host = url.split("/")[2] if url.count("/") >= 2 else url
    return ConnectorError(reason, f"cannot reach {host}: {text}")
