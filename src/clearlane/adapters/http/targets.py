"""targets owns which URLs webhooks may be delivered to (the service must not become a way to
reach the operator's own network: SSRF).

By default a target must be ``https`` and every address its host resolves to must be a public
unicast address: loopback, private, link-local, shared (CGNAT), multicast, reserved and
unspecified addresses are refused (an IPv4-mapped IPv6 address is judged as the IPv4 address it
maps). An explicit allow-list (``clearlane serve --webhook-allow``, for local development and
internal receivers) names hosts (``localhost``), addresses (``127.0.0.1``) or networks
(``10.0.0.0/8``): a target whose host is listed, or all of whose addresses are, may use plain
``http`` and non-public addresses.

The check runs when an endpoint is registered *and* before every delivery, and a delivery
connects to the address it checked (:class:`Target` carries it; the request keeps the host name
in ``Host`` and in TLS SNI): a DNS answer that changes between the check and the connection
(DNS rebinding) cannot redirect a delivery.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str, int], list[str]]


class TargetRefused(ValueError):
    """A webhook URL that is malformed or names a target the policy refuses (``reason``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def system_resolver(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (A and AAAA), as text."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as exc:  # ValueError: a NUL in the name
        raise TargetRefused(f"host {host[:100]!r} does not resolve ({exc})") from None
    return sorted({str(info[4][0]) for info in infos})


@dataclass(frozen=True)
class Target:
    """A checked target: the URL to request (host replaced by the checked address), the ``Host``
    header and the TLS server name to send."""

    url: str
    host_header: str
    server_name: str | None


@dataclass(frozen=True)
class TargetPolicy:
    allow: tuple[str, ...] = ()
    resolver: Resolver = system_resolver

    def __post_init__(self) -> None:
        for entry in self.allow:
            _allowed_entry(entry)  # a bad entry fails at start-up, not at the first webhook

    def check(self, url: str) -> Target:
        """The target of ``url`` if the policy allows it; else :class:`TargetRefused`."""
        parts, host, port = _parse(url)
        listed_host = host.lower() in self._hosts()
        if parts.scheme != "https" and not listed_host and not self._literal_listed(host):
            raise TargetRefused("https is required (plain http only for an allow-listed host)")
        literal = _literal(host)
        addresses = [literal] if literal is not None else [_address(a) for a in self.resolver(host, port)]
        if not addresses:
            raise TargetRefused(f"host {host!r} does not resolve")
        if not listed_host:
            for address in addresses:
                self._judge(address)
        chosen = addresses[0]
        netloc = f"[{chosen}]" if chosen.version == 6 else str(chosen)
        if parts.port is not None:
            netloc += f":{parts.port}"
        host_header = parts.hostname or host
        if ":" in host_header:
            host_header = f"[{host_header}]"
        if parts.port is not None:
            host_header += f":{parts.port}"
        return Target(
            parts._replace(netloc=netloc).geturl(),
            host_header,
            host if parts.scheme == "https" and literal is None else None,
        )

    def _hosts(self) -> set[str]:
        return {e.lower() for e in self.allow if _allowed_entry(e) is None}

    def _networks(self) -> list[Network]:
        return [n for n in (_allowed_entry(e) for e in self.allow) if n is not None]

    def _literal_listed(self, host: str) -> bool:
        literal = _literal(host)
        return literal is not None and any(_plain(literal) in n for n in self._networks())

    def _judge(self, address: Address) -> None:
        plain = _plain(address)
        if any(plain in n for n in self._networks()):
            return
        if not plain.is_global or plain.is_multicast or plain.is_unspecified or plain.is_reserved:
            raise TargetRefused(
                f"{address} is not a public address (loopback, private, link-local, multicast and "
                "unspecified targets are refused unless allow-listed)"
            )


def _parse(url: str) -> tuple[SplitResult, str, int]:
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a bad port
        host = parts.hostname
    except ValueError as exc:
        raise TargetRefused(f"malformed URL: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("the scheme must be https (or http for an allow-listed host)")
    if not host:
        raise TargetRefused("malformed URL: no host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused("credentials in the URL are not allowed (the body is signed instead)")
    try:
        host.encode("idna")
    except UnicodeError:
        raise TargetRefused(f"malformed URL: host {host[:100]!r} is not a valid name") from None
    return parts, host, port if port is not None else (443 if parts.scheme == "https" else 80)


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _address(text: str) -> Address:
    return ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone id


def _plain(address: Address) -> Address:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _allowed_entry(entry: str) -> Network | None:
    """An allow-list entry as a network (an address is a /32 or /128), or None for a host name."""
    try:
        return ipaddress.ip_network(entry, strict=False)
    except ValueError:
        if not entry or "/" in entry or ":" in entry:
            raise ValueError(
                f"webhook allow-list entry {entry!r} is not a host, address or network"
            ) from None
        return None


def policy(allow: Sequence[str] = (), resolver: Resolver | None = None) -> TargetPolicy:
    return TargetPolicy(tuple(allow), resolver or system_resolver)
