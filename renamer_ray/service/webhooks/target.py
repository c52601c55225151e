"""Where a callback may go: only to an ``https://`` URL (``http://`` when CALLBACK_ALLOW_HTTP) whose host
resolves to global addresses only (``is_global``, IPv4-mapped, 6to4 and NAT64 addresses judged by the
IPv4 address they carry; multicast never), unless CALLBACK_ALLOW_PRIVATE. The host is resolved once per
delivery into a :class:`Target`, the checked address every attempt connects to, while TLS (SNI,
certificate name) and the ``Host`` header keep the URL's host name: a second DNS answer (rebinding)
is never asked for.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from typing import Callable, Iterable
from urllib.parse import urlsplit

MAX_URL_CHARS = 2048
HOST_NAME = re.compile(r"^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*\.?$")
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))

Resolver = Callable[[str, int], Iterable[str]]   # (host, port) → addresses, as getaddrinfo gives them


class CallbackRefused(ValueError):
    """The callback URL may not be used; the message says why."""


@dataclass(frozen=True)
class Target:
    """A checked callback URL: what to connect to (``address``, resolved once) and what to say (``host``)."""

    url: str
    scheme: str
    host: str          # ASCII, as in the URL: TLS SNI and certificate name, and the Host header
    port: int
    path: str          # path and query
    address: str       # the checked IP address every attempt connects to

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == (443 if self.scheme == "https" else 80) else f"{host}:{self.port}"


def system_resolve(host: str, port: int) -> list[str]:
    return [info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


def _is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """A global unicast address; an IPv6 address that carries an IPv4 one is judged by that one."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return _is_public(ip.ipv4_mapped)
        if ip.sixtofour is not None:
            return _is_public(ip.sixtofour) and ip.is_global
        if any(ip in net for net in NAT64):
            return _is_public(ipaddress.IPv4Address(ip.packed[-4:]))
        if ip.packed[:12] == bytes(12):  # ::/96, the deprecated IPv4-compatible form (and :: and ::1)
            return False
    return ip.is_global and not ip.is_multicast and not ip.is_reserved and not ip.is_unspecified


def check_url(url: str, *, allow_private: bool, allow_http: bool = False, resolve: Resolver | None = None) -> Target:
    """The URL, checked and with its host resolved once (``resolve``: the system's resolver unless a
    test gives one): an absolute http(s) URL, https unless ``allow_http``, whose host resolves only
    to global addresses unless ``allow_private``. Raises CallbackRefused with a sentence saying why."""
    if not isinstance(url, str) or len(url) > MAX_URL_CHARS:
        raise CallbackRefused(f"callback_url is too long: at most {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(url)
        port, hostname = parts.port, parts.hostname
    except ValueError as exc:   # an unclosed [ of an IPv6 address, a port that is not a number 0-65535
        raise CallbackRefused(f"callback_url is not a valid URL ({exc})") from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise CallbackRefused("callback_url must be an absolute http:// or https:// URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackRefused("callback_url must not carry a user name or password")
    if port == 0:
        raise CallbackRefused("callback_url has port 0: give a port from 1 to 65535")
    port = port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if not re.fullmatch(r"[!-~]*", path):
        raise CallbackRefused("callback_url: the path may hold only printable ASCII (percent-encode the rest)")
    literal = _ip(hostname)
    if literal is None:
        try:
            hostname = hostname.encode("idna").decode("ascii")
        except UnicodeError:
            raise CallbackRefused(f"callback_url: {hostname!r} is not a valid host name") from None
        if not HOST_NAME.match(hostname) or len(hostname) > 253:
            raise CallbackRefused(f"callback_url: {hostname!r} is not a valid host name")
        try:
            answers = list(dict.fromkeys((resolve or system_resolve)(hostname, port)))
        except (OSError, UnicodeError):
            raise CallbackRefused(f"callback_url: the host {hostname!r} does not resolve") from None
        addresses = [ip for a in answers if (ip := _ip(a)) is not None]
        if not addresses or len(addresses) != len(answers):
            raise CallbackRefused(f"callback_url: the host {hostname!r} does not resolve to an IP address")
    else:
        addresses = [literal]
    if not allow_private and not all(_is_public(ip) for ip in addresses):
        raise CallbackRefused(f"callback_url: {hostname!r} is a private, local or otherwise non-public address "
                              "(callbacks go to public hosts only)")
    if parts.scheme == "http" and not allow_http:
        raise CallbackRefused("callback_url must be https:// (this deployment does not send callbacks over "
                              "plain http: CALLBACK_ALLOW_HTTP)")
    first = addresses[0]
    if isinstance(first, ipaddress.IPv6Address) and first.ipv4_mapped is not None:
        first = first.ipv4_mapped   # connect over IPv4 to the address it was judged as
    return Target(url=url, scheme=parts.scheme, host=hostname, port=port, path=path, address=str(first))


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None
