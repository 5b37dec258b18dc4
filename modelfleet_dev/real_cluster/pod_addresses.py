"""Pod IPs of the kwok Nodes, handed out by the harness: one address per live pod UID.

Why not kwok's own ``PodIPsWith``: kwok 0.8.0 takes a fresh address on every template render,
runs past the end of the Node's podCIDR into the next Node's range, and returns an address to
the pool on every Deleted event of a pod name, so pods recreated under one name ended up sharing
IPs (25 shared of 1,846 in a 2,000-pod roll-out). Here an address is keyed by pod UID, taken
from its Node's podCIDR only, and freed once, when that UID is gone from the apiserver.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

__all__ = ["PodAddresses", "PodAddressesExhausted"]


class PodAddressesExhausted(RuntimeError):
    """Every host address of a Node's podCIDR is held by a live pod."""


@dataclass
class _Range:
    hosts: list[str]
    cursor: int = 0  # host-local IPAM style: the next search starts after the last address given
    held: set[str] = field(default_factory=set)


@dataclass
class PodAddresses:
    """Which pod UID holds which address. Invariant: no address is held by two UIDs."""

    _ranges: dict[str, _Range] = field(default_factory=dict)
    _by_uid: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> (cidr, ip)

    def _range(self, cidr: str) -> _Range:
        found = self._ranges.get(cidr)
        if found is None:
            hosts = [str(ip) for ip in ipaddress.ip_network(cidr).hosts()]
            found = self._ranges[cidr] = _Range(hosts)
        return found

    def address_of(self, uid: str) -> str | None:
        held = self._by_uid.get(uid)
        return held[1] if held else None

    def hold(self, uid: str, cidr: str, ip: str) -> bool:
        """Record an address a pod already shows (a relist). False if another UID holds it or it
        is outside the CIDR: the caller must not serve it for this pod."""
        span = self._range(cidr)
        if ipaddress.ip_address(ip) not in ipaddress.ip_network(cidr):
            return False
        if self._by_uid.get(uid) == (cidr, ip):
            return True
        if ip in span.held:
            return False
        self.release(uid)
        span.held.add(ip)
        self._by_uid[uid] = (cidr, ip)
        return True

    def assign(self, uid: str, cidr: str) -> str:
        """The pod's address: the one it holds, else the next free one of its Node's CIDR."""
        current = self._by_uid.get(uid)
        if current is not None and current[0] == cidr:
            return current[1]
        self.release(uid)
        span = self._range(cidr)
        for step in range(len(span.hosts)):
            index = (span.cursor + step) % len(span.hosts)
            ip = span.hosts[index]
            if ip not in span.held:
                span.cursor = index + 1
                span.held.add(ip)
                self._by_uid[uid] = (cidr, ip)
                return ip
        raise PodAddressesExhausted(
            f"podCIDR {cidr}: all {len(span.hosts)} addresses are held by live pods "
            "(add Nodes: the harness gives each its own /24)"
        )

    def release(self, uid: str) -> None:
        held = self._by_uid.pop(uid, None)
        if held is not None:
            self._ranges[held[0]].held.discard(held[1])

    def uids(self) -> set[str]:
        return set(self._by_uid)
