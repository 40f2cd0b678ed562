"""Where notices may go: public addresses only, unless the operator allows networks.

A rule's webhook is a URL its author chose, and the server is the one that connects to
it: left open, any API token could make drainpipe POST into the network it runs in (a
database's HTTP port, a cloud metadata service at 169.254.169.254) and read from the
history whether something answered. So a webhook's host must resolve only to global
addresses, or to networks named in `DRAINPIPE_ALERT_ALLOW_NETS` (say `10.0.0.0/8` for an
internal receiver). A literal address is checked when the rule is made; every send
resolves the name again, checks each address, and connects to the address it checked,
so a name that later resolves elsewhere (DNS rebinding) gains nothing.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from drainpipe.config import Config

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
LOCAL_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


class Blocked(Exception):
    """A notice's destination is not one it may go to; says which and what to do."""


def nets_of(config: Config) -> tuple[Network, ...]:
    """The networks a config allows notices to go to besides public ones."""
    return tuple(ipaddress.ip_network(n, strict=False) for n in config.alert_allow_nets)


def allowed(address: Address, nets: Sequence[Network]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if any(address in net for net in nets):
        return True
    return address.is_global and not address.is_multicast


def _why(host: str, address: Address | None) -> str:
    shown = f"{host} ({address})" if address is not None and str(address) != host else host
    return (
        f"{shown} is not a public address; notices go to private, loopback or link-local "
        "networks only when the operator lists them in DRAINPIPE_ALERT_ALLOW_NETS "
        "(for example 10.0.0.0/8)"
    )


def host_port(url: str) -> str:
    """A URL's `host[:port]`, without the user information a receiver URL may carry."""
    return urlsplit(url).netloc.rpartition("@")[2]


def check_url(url: str, nets: Sequence[Network]) -> None:
    """At a rule's making: a literal address or a local name that may not be used."""
    host = (urlsplit(url).hostname or "").rstrip(".").lower()
    if not host:
        raise Blocked(f"{url!r} has no host")
    if host in LOCAL_NAMES:
        if not any(ipaddress.ip_address("127.0.0.1") in net for net in nets):
            raise Blocked(_why(host, None))
        return
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return  # a name: checked at each send, when it is resolved
    if not allowed(address, nets):
        raise Blocked(_why(host, address))


Resolve = Callable[[str, int], list[str]]


def resolve(host: str, port: int) -> list[str]:
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def address_for(host: str, port: int, nets: Sequence[Network], how: Resolve = resolve) -> str:
    """The address to connect to for host: every address it resolves to must be allowed
    (one bad one refuses it, so round-robin DNS cannot sneak one in)."""
    found = how(host, port)
    if not found:
        raise OSError(f"{host} resolves to no address")
    for raw in found:
        address = ipaddress.ip_address(raw.split("%")[0])
        if not allowed(address, nets):
            raise Blocked(_why(host, address))
    return found[0]
