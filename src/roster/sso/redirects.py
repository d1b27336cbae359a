"""Where single sign-on may send a browser back to: the host application's registered URIs."""

from __future__ import annotations

from urllib.parse import urlsplit


def check_redirect_uris(uris: list[str]) -> list[str]:
    """Absolute https URIs without a fragment (http only to this machine, for development)."""
    for uri in uris:
        parts = urlsplit(uri)
        local = parts.hostname in ("localhost", "127.0.0.1", "::1")
        if parts.scheme not in ("https", "http") or not parts.netloc or parts.fragment:
            raise ValueError(f"sso_redirect_uris: {uri!r} is not an absolute URL without a #fragment")
        if parts.scheme == "http" and not local:
            raise ValueError(f"sso_redirect_uris: {uri!r} must use https (http only for localhost)")
    return list(dict.fromkeys(uris))
