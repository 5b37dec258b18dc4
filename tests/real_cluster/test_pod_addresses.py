"""The harness's pod IPs: one address per live pod UID, always inside its Node's podCIDR."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from modelfleet_dev.real_cluster.pod_addresses import PodAddresses, PodAddressesExhausted

CIDRS = ["10.244.1.0/29", "10.244.2.0/29"]  # 6 hosts each: exhaustion is reachable
operations = st.lists(
    st.tuples(
        st.sampled_from(["assign", "release", "hold"]), st.integers(0, 15), st.integers(0, 1)
    ),
    max_size=120,
)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_no_two_live_uids_share_an_address_and_each_stays_in_its_cidr(
    ops: list[tuple[str, int, int]],
) -> None:
    book = PodAddresses()
    live: dict[str, tuple[str, str]] = {}
    for op, n, c in ops:
        uid, cidr = f"uid-{n}", CIDRS[c]
        if op == "assign":
            try:
                ip = book.assign(uid, cidr)
            except PodAddressesExhausted as exc:
                assert cidr in str(exc)
                held = [v for k, v in live.items() if v[0] == cidr and k != uid]
                assert len(held) == 6
                live.pop(uid, None)
                continue
            if uid in live and live[uid][0] == cidr:
                assert ip == live[uid][1]  # a pod keeps its address
            live[uid] = (cidr, ip)
        elif op == "release":
            book.release(uid)
            live.pop(uid, None)
        else:  # a relist shows the pod with some address of the range
            ip = str(list(ipaddress.ip_network(cidr).hosts())[n % 6])
            taken = any(v == (cidr, ip) for k, v in live.items() if k != uid)
            assert book.hold(uid, cidr, ip) is (not taken)
            if not taken:
                live[uid] = (cidr, ip)
        ips = [v for v in live.values()]
        assert len(ips) == len(set(ips))
        for cidr_, ip_ in ips:
            assert ipaddress.ip_address(ip_) in ipaddress.ip_network(cidr_)
        assert {u: book.address_of(u) for u in live} == {u: v[1] for u, v in live.items()}


def test_a_freed_address_is_given_again_only_after_the_rest_of_the_range() -> None:
    book = PodAddresses()
    first = book.assign("a", "10.244.1.0/24")
    book.release("a")
    assert book.assign("b", "10.244.1.0/24") != first  # host-local style: no instant reuse
    assert first == "10.244.1.1"


def test_a_full_range_names_the_cidr() -> None:
    book = PodAddresses()
    for n in range(254):
        book.assign(f"uid-{n}", "10.244.9.0/24")
    with pytest.raises(PodAddressesExhausted, match=r"10\.244\.9\.0/24: all 254 addresses"):
        book.assign("one-more", "10.244.9.0/24")


def test_an_address_outside_the_cidr_is_not_held() -> None:
    assert PodAddresses().hold("a", "10.244.1.0/24", "10.244.2.5") is False
