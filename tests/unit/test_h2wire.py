"""HTTP/2 wire helpers: stateless HPACK blocks, frame layout, the :status fast path."""

from __future__ import annotations

import hpack
import pytest

from kdoctor.probes import h2wire as w


def frames(data: bytes) -> list[tuple[int, int, int, bytes]]:
    """(type, flags, stream id, payload) of every frame in ``data``."""
    out = []
    at = 0
    while at < len(data):
        hi, lo, ftype, flags, sid = w.FRAME_HEAD.unpack_from(data, at)
        length = hi << 16 | lo
        out.append((ftype, flags, sid, data[at + 9:at + 9 + length]))
        at += 9 + length
    return out


HEADERS = [
    (b":method", b"GET"),  # a whole static entry
    (b":scheme", b"http"),
    (b":authority", b"10.0.0.9:8443"),  # a static name with our value
    (b":path", b"/healthz?x=1"),
    (b"user-agent", b"kdoctor"),
    (b"x-origin", b"http://a.example:8080/x"),  # a name outside the static table
    (b"authorization", b"Bearer " + b"t" * 300),  # a length that needs a multi-byte integer
]


def test_request_block_decodes_and_leaves_no_state() -> None:
    block = w.encode_block(HEADERS)
    decoder = hpack.Decoder()
    for _ in range(3):  # the same bytes on every stream: nothing may be indexed
        assert decoder.decode(block, raw=True) == HEADERS
        assert len(decoder.header_table.dynamic_entries) == 0


def test_request_headers_frames_carry_the_stream_id() -> None:
    block = w.encode_block(HEADERS)
    out = bytearray()
    w.RequestHeaders(block, end_stream=True).write(out, 7)
    assert frames(bytes(out)) == [(w.HEADERS, w.END_STREAM | w.END_HEADERS, 7, block)]
    out.clear()
    w.RequestHeaders(block, end_stream=False).write(out, 9)  # a body follows
    assert frames(bytes(out)) == [(w.HEADERS, w.END_HEADERS, 9, block)]


def test_a_large_request_block_is_split_into_continuation_frames() -> None:
    block = w.encode_block([(b":path", b"/"), (b"x-big", b"v" * 40_000)])
    out = bytearray()
    w.RequestHeaders(block, end_stream=True).write(out, 3)
    got = frames(bytes(out))
    assert [f[0] for f in got] == [w.HEADERS, w.CONTINUATION, w.CONTINUATION]
    assert [f[1] for f in got] == [w.END_STREAM, 0, w.END_HEADERS]
    assert all(len(f[3]) <= w.DEFAULT_MAX_FRAME for f in got) and {f[2] for f in got} == {3}
    assert b"".join(f[3] for f in got) == block


def test_indexed_status_bytes() -> None:
    assert w.STATUS_BY_BYTE == {0x88: 200, 0x89: 204, 0x8A: 206, 0x8B: 304, 0x8C: 400, 0x8D: 404, 0x8E: 500}


def test_size_updates_to_zero_are_skipped_and_others_refused() -> None:
    assert w.skip_size_updates(b"\x20\x20\x88", 0, 3) == 2
    assert w.skip_size_updates(b"\x88", 0, 1) == 0
    with pytest.raises(w.WireError):
        w.skip_size_updates(b"\x3f\xe1\x1f\x88", 0, 4)  # 4096: the default, not ours
    with pytest.raises(w.WireError):
        w.skip_size_updates(b"\x21\x88", 0, 2)


def test_status_decoder_reads_literals_and_refuses_dynamic_references() -> None:
    encoder = hpack.Encoder()
    encoder.header_table_size = 0  # as a server must after our SETTINGS_HEADER_TABLE_SIZE=0
    block = encoder.encode([(":status", "201"), ("server", "x")])
    at = w.skip_size_updates(block, 0, len(block))
    decoder = w.StatusDecoder()
    assert decoder.status(block[at:]) == 201
    assert decoder.status(block[at:]) == 201  # stateless: the same block again
    assert decoder.status(hpack.Encoder().encode([("server", "x")])) is None
    with pytest.raises(w.WireError):
        decoder.status(b"\xbe")  # index 62: the first dynamic entry, which cannot exist


def test_settings_round_trip_and_malformed_payload() -> None:
    payload = w.settings_payload([(w.HEADER_TABLE_SIZE, 0), (w.INITIAL_WINDOW_SIZE, 1 << 20)])
    assert w.parse_settings(payload) == [(w.HEADER_TABLE_SIZE, 0), (w.INITIAL_WINDOW_SIZE, 1 << 20)]
    with pytest.raises(w.WireError):
        w.parse_settings(payload[:-1])


def test_frame_layout() -> None:
    data = w.frame(w.PING, w.ACK, 0, b"12345678")
    assert data[:9] == b"\x00\x00\x08\x06\x01\x00\x00\x00\x00" and frames(data) == [(w.PING, w.ACK, 0, b"12345678")]
