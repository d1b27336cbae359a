"""The emulated tenant's user sign-in: OpenID Connect authorization code flow with PKCE.

From Microsoft identity platform "OAuth 2.0 authorization code flow", "OpenID Connect on the
Microsoft identity platform" and "ID token claims reference" (learn.microsoft.com): the
``/authorize`` endpoint sends the browser back with ``code`` and ``state`` (or ``error`` and an
AADSTS ``error_description``, e.g. AADSTS50057 for a disabled account): in the query of a redirect,
or (``response_mode=form_post``) as a page whose form the browser posts to the redirect URI; the
token endpoint checks the code, its redirect URI and the PKCE verifier (S256), and returns an ID token signed
RS256 by a key the tenant publishes at ``jwks_uri`` (keys rotate: a ``kid`` names the key), with
``iss`` ``https://login.../{tid}/v2.0``, ``aud`` the client id, ``oid``, ``tid``, ``nonce``.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from roster.demo.graph_tenant import Tenant


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    nonce: str | None
    challenge: str | None
    user_id: str
    issued: float


@dataclass
class SignIn:
    tenant: Tenant
    signed_in: str | None = None  # the user who signs in at /authorize (the test plays the browser)
    keys: list[tuple[str, rsa.RSAPrivateKey]] = field(default_factory=list)  # newest first
    codes: dict[str, _Code] = field(default_factory=dict)
    # tests of the relying party: claims to change in the next ID tokens, and how to sign them
    # ("stranger": a key the tenant does not publish; "none": unsigned; "hs256": an HMAC)
    tamper: dict[str, Any] = field(default_factory=dict)
    sign_with: str | None = None

    def __post_init__(self) -> None:
        self.rotate()

    def rotate(self, keep_old: bool = True) -> str:
        """A new signing key (the old one stays published unless ``keep_old`` is False)."""
        kid = secrets.token_urlsafe(8)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.keys = [(kid, key), *(self.keys if keep_old else [])]
        return kid

    def _sign(self, claims: dict[str, Any]) -> str:
        return _sign_as(self.keys, self.sign_with, claims)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys:
            jwk = jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key(), as_dict=True)
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": out}

    def authorize(self, query: dict[str, str]) -> tuple[str, dict[str, str]]:
        """Where the browser goes next, and with what: a code, or an error (and the state)."""
        redirect = query.get("redirect_uri", "")
        state = {"state": query["state"]} if "state" in query else {}
        user = self.tenant.visible("users", self.signed_in or "")
        if user is None or user.get("accountEnabled") is False:
            error = {
                "error": "access_denied",
                "error_description": "AADSTS50057: The user account is disabled.",
            }
            return redirect, {**error, **state}
        code = secrets.token_urlsafe(24)
        self.codes[code] = _Code(
            query.get("client_id", ""),
            redirect,
            query.get("nonce"),
            query.get("code_challenge"),
            str(user["id"]),
            time.time(),
        )
        return redirect, {"code": code, **state}

    def redeem(self, form: dict[str, str], issuer: str) -> tuple[int, dict[str, Any]]:
        found = self.codes.pop(form.get("code", ""), None)
        if found is None or time.time() - found.issued > 600:
            return 400, aad_error(
                "invalid_grant", 70008, "The provided authorization code is expired or used."
            )
        if found.client_id != form.get("client_id") or found.redirect_uri != form.get("redirect_uri"):
            return 400, aad_error(
                "invalid_grant", 50148, "The code was issued to another client or redirect URI."
            )
        if found.challenge is not None and _s256(form.get("code_verifier", "")) != found.challenge:
            return 400, aad_error(
                "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge."
            )
        user = self.tenant.visible("users", found.user_id) or {}
        now = int(time.time())
        claims = {
            "iss": issuer,
            "aud": found.client_id,
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "sub": hashlib.sha256(f"{found.client_id}:{found.user_id}".encode()).hexdigest()[:43],
            "oid": found.user_id,
            "tid": self.tenant.tenant_id,
            "name": user.get("displayName"),
            "preferred_username": user.get("userPrincipalName"),
            "email": user.get("mail"),
            "ver": "2.0",
            **({"nonce": found.nonce} if found.nonce else {}),
        }
        id_token = self._sign({**claims, **self.tamper})
        return 200, {
            "token_type": "Bearer",
            "scope": "openid profile email",
            "expires_in": 3599,
            "access_token": secrets.token_urlsafe(32),
            "id_token": id_token,
        }


def _sign_as(keys: list[tuple[str, rsa.RSAPrivateKey]], how: str | None, claims: dict[str, Any]) -> str:
    kid, key = keys[0]
    if how == "stranger":
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if how == "none":
        return jwt.encode(claims, "", algorithm="none", headers={"kid": kid})
    if how == "hs256":
        return jwt.encode(
            claims, "a-shared-secret-of-32-bytes-length!", algorithm="HS256", headers={"kid": kid}
        )
    return jwt.encode(claims, key, algorithm="RS256", headers={"kid": kid})


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def aad_error(error: str, code: int, text: str) -> dict[str, Any]:
    """An Entra login error body: the OAuth error, and the AADSTS code in the description."""
    trace = secrets.token_hex(8)
    return {
        "error": error,
        "error_description": f"AADSTS{code}: {text} Trace ID: {trace}",
        "error_codes": [code],
        "trace_id": trace,
    }
