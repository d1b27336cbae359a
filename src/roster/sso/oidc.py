"""OpenID Connect against an Entra tenant: msal's authorization code flow (PKCE S256, a nonce, the
code redeemed with the client secret or certificate), and the ID token verified as OpenID
Connect Core 1.0 section 3.1.3.7 asks: signature by a key of the tenant's JWKS (a new ``kid``
fetches the set again: keys rotate), ``iss`` as the tenant's discovery document says, ``aud`` the
application, ``exp``/``nbf``, ``nonce`` as sent, ``tid`` the configured tenant.
"""

from __future__ import annotations

import hashlib
import secrets
import ssl
from typing import Any

import httpx
import jwt
import requests

from roster.connectors.base import ConnectorError
from roster.connectors.graph.client import GraphClient
from roster.connectors.graph.config import GraphConfig


class SignInRefused(Exception):
    """The provider or the token said no; ``code`` is stable, the message says why."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


def begin(config: GraphConfig, redirect_uri: str, state: str) -> tuple[str, dict[str, Any]]:
    """(the provider's authorization URL, the flow to keep until the browser comes back): msal's
    authorization code flow, with PKCE (S256) and a nonce; the code comes back in a form post (not
    in a URL, where logs and the Referer header would keep it)."""
    client = GraphClient(config)
    try:
        flow: dict[str, Any] = client.app().initiate_auth_code_flow(
            scopes=[], redirect_uri=redirect_uri, state=state, response_mode="form_post"
        )
    except (ConnectorError, requests.RequestException, ValueError) as exc:
        raise _unreachable(exc) from None
    finally:
        client.close()
    return str(flow["auth_uri"]), flow


def redeem(config: GraphConfig, flow: dict[str, Any], code: str, state: str) -> dict[str, Any]:
    """The verified ID token claims for the code the provider sent back."""
    client = GraphClient(config)
    try:
        result = client.app().acquire_token_by_auth_code_flow(flow, {"code": code, "state": state})
    except (ValueError, RuntimeError) as exc:  # msal: the state or the nonce is not this flow's
        raise SignInRefused("invalid_id_token", f"the sign-in was refused: {exc}") from None
    except (ConnectorError, requests.RequestException) as exc:
        raise _unreachable(exc) from None
    finally:
        client.close()
    token = result.get("id_token")
    if not token:
        description = str(result.get("error_description", result.get("error", "no ID token")))
        raise SignInRefused("code_refused", description.split(" Trace ID:", 1)[0])
    return verify_id_token(config, str(token), _nonce_hash(str(flow["nonce"])))


def _unreachable(exc: Exception) -> SignInRefused:
    return SignInRefused("provider_unreachable", f"the identity provider cannot be reached: {exc}")


def _nonce_hash(nonce: str) -> str:
    """The nonce as msal sends it (and as the ID token carries it): its SHA-256 in hex."""
    return hashlib.sha256(nonce.encode("ascii")).hexdigest()


def verify_id_token(config: GraphConfig, token: str, nonce: str) -> dict[str, Any]:
    context = ssl.create_default_context()
    if config.ca_file:
        context.load_verify_locations(config.ca_file)
    discovery = _discovery(config, context)
    try:
        key = jwt.PyJWKClient(str(discovery["jwks_uri"]), ssl_context=context).get_signing_key_from_jwt(token)
        claims: dict[str, Any] = jwt.decode(
            token,
            key.key,
            algorithms=["RS256"],
            audience=config.client_id,
            issuer=str(discovery["issuer"]),
            options={"require": ["exp", "iat", "iss", "aud", "oid", "tid"]},
            leeway=60,
        )
    except jwt.PyJWTError as exc:
        raise SignInRefused("invalid_id_token", f"the ID token was refused: {exc}") from None
    if not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
        raise SignInRefused("invalid_id_token", "the ID token was refused: its nonce is not this sign-in's")
    if str(discovery["issuer"]).rstrip("/").split("/")[-2] != claims["tid"]:
        raise SignInRefused("invalid_id_token", "the ID token was refused: it names another tenant")
    return claims


def _discovery(config: GraphConfig, context: ssl.SSLContext) -> dict[str, Any]:
    url = f"{config.login_url}/{config.tenant_id}/v2.0/.well-known/openid-configuration"
    try:
        response = httpx.get(url, verify=context, timeout=config.timeout)
        response.raise_for_status()
        body: dict[str, Any] = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise SignInRefused("provider_unreachable", f"cannot read {url}: {exc}") from None
    return body
