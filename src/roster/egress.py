"""Where Roster may connect on a tenant's behalf, checked at the moment it connects.

A tenant controls some addresses Roster connects to: webhook URLs, and the directory URL
an organization's admin (an organization key, the console, a setup link) enters. Checking
a name once and letting the client resolve it again is not enough: a name can answer a
public address to the check and ``127.0.0.1`` to the connection (DNS rebinding). So the
HTTP client connects through :class:`PinnedBackend`, which resolves the name itself,
refuses when any address it got is not allowed, and connects to the address it checked
(TLS still verifies the certificate against the name).

The rules (:class:`Reach`):

- webhooks: global addresses only, unless ``ROSTER_WEBHOOK_ALLOW_PRIVATE``;
- directories entered by a tenant: the networks in ``ROSTER_DIRECTORY_ALLOWED_NETWORKS``
  when set, else anything but loopback, link-local, unspecified and multicast addresses
  and the networks this server sits on (read from ``/proc/net/route`` and
  ``/proc/net/if_inet6`` on Linux; elsewhere only its own addresses).
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpcore
import httpx

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[..., list[Any]]


class Refused(OSError):
    """The name does not resolve, or resolves to an address this rule does not allow."""


@dataclass(frozen=True)
class Reach:
    """Which addresses a connection made for a tenant may reach."""

    name: str  # what the rule is for, in messages: "webhooks", "directories"
    allowed: tuple[Network, ...] = ()  # when given, only these
    denied: tuple[Network, ...] = ()  # always refused (unless in ``allowed``)
    global_only: bool = False
    anything: bool = False
    resolver: Resolver = field(default=socket.getaddrinfo, compare=False)

    def permits(self, address: Address) -> bool:
        if self.anything:
            return True
        if self.allowed:
            return any(address in net for net in self.allowed if net.version == address.version)
        if address.is_loopback or address.is_link_local or address.is_unspecified or address.is_multicast:
            return False
        if self.global_only and not address.is_global:
            return False
        return not any(address in net for net in self.denied if net.version == address.version)

    def addresses(self, host: str, port: int) -> list[str]:
        """Every address ``host`` resolves to, all allowed, or Refused."""
        try:
            infos = self.resolver(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise Refused(f"{host} does not resolve ({getattr(exc, 'strerror', None) or exc})") from None
        found = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
        for text in found:
            if not self.permits(ipaddress.ip_address(text)):
                raise Refused(f"{host} resolves to {text}, an address {self.name} may not reach")
        if not found:
            raise Refused(f"{host} does not resolve")
        return found


def webhook_reach(allow_private: bool, resolver: Resolver = socket.getaddrinfo) -> Reach:
    return Reach("webhooks", global_only=True, anything=allow_private, resolver=resolver)


def directory_reach(allowed_networks: str, resolver: Resolver = socket.getaddrinfo) -> Reach:
    """The rule for directory URLs a tenant entered (``ROSTER_DIRECTORY_ALLOWED_NETWORKS``)."""
    allowed = parse_networks(allowed_networks)
    return Reach("directories", allowed=allowed, denied=() if allowed else own_networks(), resolver=resolver)


def parse_networks(text: str) -> tuple[Network, ...]:
    """``"10.0.0.0/8, 192.168.1.0/24"`` -> networks; ValueError naming the bad element."""
    networks = []
    for item in text.replace(";", ",").split(","):
        if item.strip():
            try:
                networks.append(ipaddress.ip_network(item.strip(), strict=False))
            except ValueError:
                raise ValueError(f"directory_allowed_networks: {item.strip()!r} is not a network") from None
    return tuple(networks)


def own_networks() -> tuple[Network, ...]:
    """The networks this server is directly connected to, and its own addresses."""
    found: list[Network] = list(_connected_ipv4()) + list(_connected_ipv6())
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None)
    except OSError:
        infos = []
    for info in infos:
        address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        found.append(ipaddress.ip_network(address))
    return tuple(dict.fromkeys(found))


def _connected_ipv4() -> Iterable[Network]:
    try:
        lines = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return
    for line in lines:
        fields = line.split()
        if len(fields) >= 8 and fields[2] == "00000000" and fields[1] != "00000000":
            dest = ipaddress.IPv4Address(int(fields[1], 16).to_bytes(4, "little"))
            mask = ipaddress.IPv4Address(int(fields[7], 16).to_bytes(4, "little"))
            yield ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)


def _connected_ipv6() -> Iterable[Network]:
    try:
        lines = Path("/proc/net/if_inet6").read_text().splitlines()
    except OSError:
        return
    for line in lines:
        fields = line.split()
        if len(fields) >= 3:
            address = ipaddress.IPv6Address(bytes.fromhex(fields[0]))
            yield ipaddress.IPv6Network(f"{address}/{int(fields[2], 16)}", strict=False)


class PinnedBackend(httpcore.NetworkBackend):
    """httpcore's network backend, connecting only to an address the rule allows."""

    def __init__(self, reach: Reach) -> None:
        self.reach = reach
        self._inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        try:
            addresses = self.reach.addresses(host, port)
        except Refused as exc:
            raise httpcore.ConnectError(str(exc)) from None
        return self._inner.connect_tcp(addresses[0], port, timeout, local_address, socket_options)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("unix sockets are not reachable for tenants")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


def pinned_client(reach: Reach, timeout: float) -> httpx.Client:
    """An HTTP client that only reaches what ``reach`` allows (no proxies, no redirects)."""
    transport = httpx.HTTPTransport()
    transport._pool = httpcore.ConnectionPool(  # httpx takes no network backend of its own
        ssl_context=httpx.create_ssl_context(), network_backend=PinnedBackend(reach)
    )
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False, trust_env=False)
