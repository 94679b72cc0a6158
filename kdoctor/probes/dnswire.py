"""DNS messages on the hot path: queries built once, replies read from their 12-byte header.

dnspython builds each query's wire form once per (domain, type); a query on the wire is then
only its 2-byte ID followed by that pre-built tail (``ID_PREFIX[qid] + tail``: one bytes object
per query, no message object). A reply is judged from its header alone: ID (bytes 0–1), RCODE
(low 4 bits of byte 3) and ANCOUNT (bytes 6–7). Parsing every reply with dnspython costs more than
the rest of the path together, so the full parse (:func:`answer_matches`) runs only on a sample,
for the answer check.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.rcode
import dns.rdatatype

__all__ = ["ID_PREFIX", "RCODE_NAMES", "QuerySet", "answer_matches", "rcode_value"]

ID_PREFIX: tuple[bytes, ...] = tuple(i.to_bytes(2, "big") for i in range(65536))
"""The 2-byte wire form of every query ID, made once: concatenating beats packing per query."""

RCODE_NAMES: tuple[str, ...] = tuple(dns.rcode.to_text(dns.rcode.Rcode.make(i)) for i in range(16))
"""Header RCODE (4 bits) → its name: NOERROR, FORMERR, SERVFAIL, NXDOMAIN, NOTIMP, REFUSED, ..."""


def rcode_value(name: str) -> int:
    """The number of an RCODE name (``NOERROR`` → 0); ValueError names the known ones."""
    try:
        value = int(dns.rcode.from_text(name.upper()))
    except dns.rcode.UnknownRcode:
        raise ValueError(f"unknown DNS reply code {name!r}; known: {', '.join(RCODE_NAMES[:11])}") from None
    if value > 15:
        raise ValueError(f"reply code {name!r} is an extended RCODE; only header RCODEs (0-15) are checked")
    return value


@dataclass(frozen=True)
class Question:
    """One query: its name, type and wire form without the ID."""

    name: str
    qtype: str
    tail: bytes


class QuerySet:
    """The queries of one target, cycled in order: ``domains`` × ``qtype``, each built once."""

    def __init__(self, domains: Sequence[str], qtype: str) -> None:
        if not domains:
            raise ValueError("at least one domain is needed")
        questions = []
        for domain in domains:
            query = dns.message.make_query(domain, dns.rdatatype.from_text(qtype))
            query.id = 0
            questions.append(Question(domain, qtype, query.to_wire()[2:]))
        self.questions: tuple[Question, ...] = tuple(questions)
        self.tails: tuple[bytes, ...] = tuple(q.tail for q in questions)


def answer_matches(wire: bytes, expected: Collection[str]) -> bool:
    """Full parse of one reply: it has answer records, and every address (or other record data)
    in its answer section is one of ``expected`` (compared as text, addresses normalized)."""
    try:
        message = dns.message.from_wire(wire)
    except dns.exception.DNSException:
        return False
    found = [rdata.to_text() for rrset in message.answer for rdata in rrset
             if rrset.rdtype not in (dns.rdatatype.CNAME, dns.rdatatype.DNAME)]
    if not found:
        return False
    return all(item in expected for item in found)
