"""Netdns pieces that need no server: spec validation, pre-built queries, planning, and the
latency recorder's bulk hand-over to the HDR histogram."""

from __future__ import annotations

import random

import dns.message
import pytest
from hdrh.histogram import HdrHistogram

from kdoctor.errors import SpecError
from kdoctor.probes import netdns
from kdoctor.probes.dnswire import ID_PREFIX, QuerySet, answer_matches, rcode_value
from kdoctor.specs import load_spec
from kdoctor.specs.latency import DIGITS, HIGHEST_US, LOWEST_US, Latency
from kdoctor.specs.netdns import Netdns
from kdoctor.specs.nodes import NodeInfo
from kdoctor.specs.plan import InventoryView, RoundContext


def netdns_doc(spec: dict[str, object]) -> dict[str, object]:
    return {"apiVersion": "kdoctor.io/v1beta1", "kind": "Netdns", "metadata": {"name": "d"}, "spec": spec}


def test_bad_netdns_fields_are_named_with_the_fix() -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(netdns_doc({
            "request": {"queryType": "AAAAA", "protocol": "doh"},
            "target": {"targetUser": {"server": "dns example"}},
            "expect": {"replyCodes": ["NOERR"]},
        }))
    text = str(caught.value)
    for fragment in ("queryType", "AAAA", "protocol", "server", "IPv4 or IPv6 address", "or a host name",
                     "replyCodes", "NXDOMAIN"):
        assert fragment in text, fragment
    with pytest.raises(SpecError, match="targetUser or targetDns, not both"):
        load_spec(netdns_doc({"target": {"targetUser": {"server": "10.0.0.1"}, "targetDns": {}}}))


def test_netdns_normalizes_addresses_and_names() -> None:
    spec = load_spec(netdns_doc({
        "request": {"domains": ["a.test", "b.test"], "queryType": "srv"},
        "target": {"targetUser": {"server": "[fd00:0::10]", "port": 5353}},
        "expect": {"answers": ["fd00:0:0::1", "10.0.0.1"], "replyCodes": ["noerror", "nxdomain"]},
    }))
    assert isinstance(spec, Netdns)
    assert spec.spec.request.names == ["a.test", "b.test"] and spec.spec.request.query_type == "SRV"
    assert spec.spec.target.target_user is not None and spec.spec.target.target_user.server == "fd00::10"
    assert spec.spec.expect.answers == ["fd00::1", "10.0.0.1"]
    assert [rcode_value(c) for c in spec.spec.expect.reply_codes] == [0, 3]
    node = NodeInfo(name="n")
    [target], warnings = netdns.plan(spec, node, RoundContext(InventoryView(expected=[node], live=["n"])))
    assert target.url == "udp://[fd00::10]:5353" and target.family == 6 and not warnings
    assert target.name == "udp/SRV/[fd00::10]:5353"


def test_prebuilt_queries_carry_their_id_and_question() -> None:
    queries = QuerySet(["www.example.test", "api.example.test"], "AAAA")
    for qid, tail in ((0, queries.tails[0]), (0xBEEF, queries.tails[1])):
        message = dns.message.from_wire(ID_PREFIX[qid] + tail)
        assert message.id == qid
        assert message.question[0].rdtype == dns.rdatatype.AAAA
    assert str(dns.message.from_wire(ID_PREFIX[1] + queries.tails[1]).question[0].name) == "api.example.test."


def test_answer_check_compares_every_record() -> None:
    query = dns.message.make_query("www.example.test", "A")
    reply = dns.message.make_response(query)
    assert not answer_matches(reply.to_wire(), {"10.0.0.1"})  # no answer at all
    reply.answer.append(dns.rrset.from_text("www.example.test.", 60, "IN", "A", "10.0.0.1", "10.0.0.2"))
    assert answer_matches(reply.to_wire(), {"10.0.0.1", "10.0.0.2", "10.0.0.3"})
    assert not answer_matches(reply.to_wire(), {"10.0.0.1"})
    assert not answer_matches(b"\x00\x01garbage", {"10.0.0.1"})


def test_latency_bulk_recording_matches_the_histogram_exactly() -> None:
    rng = random.Random(4)
    values = [rng.choice([rng.randint(1, 3000), rng.randint(3000, 5_000_000)]) for _ in range(20000)]
    ours, direct = Latency(), HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
    for us in values:
        ours.record(us / 1e6)
        direct.record_value(us)
    for pct in (1, 50, 90, 99, 99.9, 100):
        ours.flush()
        assert ours.hist.get_value_at_percentile(pct) == direct.get_value_at_percentile(pct)
    assert ours.count == len(values) and ours.max_us == max(values) and ours.min_us == min(values)
    merged = Latency()
    merged.merge(ours)
    again = Latency.decode(ours.encode())
    assert again.count == merged.count == len(values)
    assert again.percentile_ms(99) == merged.percentile_ms(99) == ours.percentile_ms(99)
