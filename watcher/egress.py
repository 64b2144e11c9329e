"""The egress policy: which addresses a fetch may reach (`fetch.allow_private`).

Watched pages are untrusted, and a redirect or a `<meta http-equiv="refresh">` is the page choosing where the
watcher goes next. The rules, applied to the address a host name resolves to, on every hop:

- a public address is always fine;
- a loopback, private, link-local, multicast or otherwise non-public address is reached only when
  `fetch.allow_private` lists it (`"127.0.0.1:8080"`, `"10.0.0.0/8"`, `"[::1]:8080"`, `"fd00::/8"`);
- once a fetch has started at a public address, no hop may lead to a non-public one, listed or not.

Pure: the fetch stage (spiders/middlewares.py) resolves names and asks.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_WITH_PORT = re.compile(r"^(?:\[(?P<v6>[^\]]+)\]|(?P<v4>[^:\[\]]+)):(?P<port>\d+)$")


@dataclass(frozen=True, slots=True)
class AllowEntry:
    network: IPNetwork
    port: int | None

    def matches(self, address: IPAddress, port: int) -> bool:
        return address in self.network and (self.port is None or self.port == port)

    def __str__(self) -> str:
        host = str(self.network.network_address) if self.network.num_addresses == 1 else str(self.network)
        if self.port is None:
            return host
        return f"[{host}]:{self.port}" if self.network.version == 6 else f"{host}:{self.port}"


def parse_allow_entry(text: str) -> AllowEntry:
    """'127.0.0.1:8080', '10.0.0.0/8', '::1', '[::1]:8080', 'fd00::/8' -> AllowEntry; ValueError otherwise."""
    raw = text.strip()
    port: int | None = None
    m = _WITH_PORT.match(raw)
    if m and "/" not in raw:
        raw = m["v6"] or m["v4"]
        port = int(m["port"])
        if not 1 <= port <= 65535:
            raise ValueError(f"{text!r}: port {port} is out of range (1-65535)")
    try:
        network = ipaddress.ip_network(raw, strict=False)
    except ValueError:
        raise ValueError(f"{text!r} is not an address or network; write e.g. '127.0.0.1:8080', '10.0.0.0/8' or "
                         "'[::1]:8080' (the check is made on resolved addresses, so host names cannot be listed)"
                         ) from None
    return AllowEntry(network, port)


def _plain(address: IPAddress) -> IPAddress:
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def is_public(address: IPAddress) -> bool:
    address = _plain(address)
    return address.is_global and not address.is_multicast


def kind_of(address: IPAddress) -> str:
    address = _plain(address)
    for attr, name in (("is_loopback", "loopback"), ("is_link_local", "link-local"), ("is_multicast", "multicast"),
                       ("is_unspecified", "unspecified"), ("is_private", "private"), ("is_reserved", "reserved")):
        if getattr(address, attr):
            return name
    return "public" if is_public(address) else "non-public"


class EgressPolicy:
    def __init__(self, allow_private: list[str] | tuple[str, ...] = ()) -> None:
        self.entries = tuple(parse_allow_entry(e) for e in allow_private)

    def refusal(self, address: str | IPAddress, port: int, *, after_public: bool = False) -> str | None:
        """Why a connection to `address`:`port` is refused, or None when it is allowed. `after_public`: an
        earlier hop of this fetch was at a public address."""
        ip = ipaddress.ip_address(address) if isinstance(address, str) else address
        if is_public(ip):
            return None
        where = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
        if after_public:
            return (f"{where} is a {kind_of(ip)} address; a fetch that started at a public address may not be "
                    "redirected or refreshed to it")
        if any(entry.matches(_plain(ip), port) or entry.matches(ip, port) for entry in self.entries):
            return None
        return f"{where} is a {kind_of(ip)} address that fetch.allow_private does not list"
