"""HTTP/2 wire format for the fast client: frames (RFC 9113 §4, §6) and just enough HPACK (RFC 7541).

==========================  ========================================================================
What                        How
==========================  ========================================================================
frame header                9 bytes, one ``struct`` unpack (``FRAME_HEAD``: length in two parts)
request header block        encoded once per target with literals *without indexing* and static
                            table references only, so one block serves every stream of every
                            connection (nothing is ever added to the server's dynamic table)
response ``:status``        the client sends ``SETTINGS_HEADER_TABLE_SIZE=0``, so the server's
                            encoder keeps no dynamic table: a block decodes without state. The
                            usual first byte is an indexed static entry (``0x88`` = 200);
                            anything else goes to ``hpack``'s decoder (table size 0)
what is not here            priorities, server push (disabled in our SETTINGS), padding on send
==========================  ========================================================================
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence

import hpack
from hpack.table import HeaderTable

__all__ = [
    "FRAME_HEAD",
    "PREFACE",
    "U32",
    "RequestHeaders",
    "StatusDecoder",
    "WireError",
    "encode_block",
    "frame",
    "parse_settings",
    "settings_payload",
    "skip_size_updates",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
"""The client connection preface (RFC 9113 §3.4), followed by a SETTINGS frame."""

# Frame types (RFC 9113 §6).
DATA = 0x0
HEADERS = 0x1
PRIORITY = 0x2
RST_STREAM = 0x3
SETTINGS = 0x4
PUSH_PROMISE = 0x5
PING = 0x6
GOAWAY = 0x7
WINDOW_UPDATE = 0x8
CONTINUATION = 0x9

# Flags.
END_STREAM = 0x1
ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS identifiers (RFC 9113 §6.5.2).
HEADER_TABLE_SIZE = 0x1
ENABLE_PUSH = 0x2
MAX_CONCURRENT_STREAMS = 0x3
INITIAL_WINDOW_SIZE = 0x4
MAX_FRAME_SIZE = 0x5
MAX_HEADER_LIST_SIZE = 0x6

# Error codes (RFC 9113 §7).
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
FLOW_CONTROL_ERROR = 0x3
FRAME_SIZE_ERROR = 0x6
CANCEL = 0x8
COMPRESSION_ERROR = 0x9

DEFAULT_WINDOW = 65_535
"""Initial flow-control window of every stream and of the connection (RFC 9113 §6.9.2)."""
DEFAULT_MAX_FRAME = 16_384
"""The largest frame payload either side accepts until told otherwise (and always may send)."""
MAX_WINDOW = 2**31 - 1
MAX_STREAM_ID = 2**31 - 1

FRAME_HEAD = struct.Struct(">BHBBL")
"""Frame header: length (high byte, low 16 bits), type, flags, stream id (with the reserved bit)."""
U32 = struct.Struct(">L")
"""A 32-bit big-endian integer (stream ids, window increments, error codes)."""
_SETTING = struct.Struct(">HL")

# ``:status`` as an indexed static-table entry (RFC 7541 Appendix A, indices 8-14): one byte.
STATUS_BY_BYTE: dict[int, int] = {0x80 | index: int(value) for index, (name, value)
                                  in enumerate(HeaderTable.STATIC_TABLE, start=1) if name == b":status"}


class WireError(Exception):
    """The peer broke the protocol (a connection error: the connection must go)."""


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    """One whole frame."""
    length = len(payload)
    return FRAME_HEAD.pack(length >> 16, length & 0xFFFF, ftype, flags, sid) + payload


def settings_payload(settings: Iterable[tuple[int, int]]) -> bytes:
    """The payload of a SETTINGS frame."""
    return b"".join(_SETTING.pack(ident, value) for ident, value in settings)


def parse_settings(payload: bytes | memoryview) -> list[tuple[int, int]]:
    """``(identifier, value)`` pairs of a SETTINGS payload; :class:`WireError` if it is malformed."""
    if len(payload) % 6:
        raise WireError("SETTINGS payload is not a multiple of 6 bytes")
    return [_SETTING.unpack_from(payload, at) for at in range(0, len(payload), 6)]


# -- HPACK, encoding ------------------------------------------------------------------------------
def _integer(value: int, prefix_bits: int, first: int) -> bytes:
    """An HPACK integer (RFC 7541 §5.1) whose first byte carries ``first``'s high bits."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _string(raw: bytes) -> bytes:
    # Not Huffman-coded: the block is built once, so its few extra bytes cost nothing per request.
    return _integer(len(raw), 7, 0x00) + raw


_STATIC_FULL = {entry: index for index, entry in reversed(list(enumerate(HeaderTable.STATIC_TABLE, start=1)))}
_STATIC_NAME = {name: index for index, (name, _) in reversed(list(enumerate(HeaderTable.STATIC_TABLE, start=1)))}


def encode_block(headers: Sequence[tuple[bytes, bytes]]) -> bytes:
    """An HPACK header block that needs no dynamic table on either side: static-table
    references and literals without indexing (RFC 7541 §6.1, §6.2.2). Reusable verbatim on any
    stream of any connection."""
    out = bytearray()
    for name, value in headers:
        full = _STATIC_FULL.get((name, value))
        if full is not None:
            out += _integer(full, 7, 0x80)
            continue
        index = _STATIC_NAME.get(name)
        if index is not None:
            out += _integer(index, 4, 0x00)
        else:
            out += b"\x00" + _string(name)
        out += _string(value)
    return bytes(out)


class RequestHeaders:
    """A request's HEADERS (and, for a block over 16 KiB, CONTINUATION) frames, built once;
    only the stream id changes between requests."""

    __slots__ = ("_parts",)

    def __init__(self, block: bytes, *, end_stream: bool) -> None:
        # Every peer accepts frames of DEFAULT_MAX_FRAME bytes, so splitting there is always valid.
        chunks = [block[at:at + DEFAULT_MAX_FRAME] for at in range(0, len(block), DEFAULT_MAX_FRAME)] or [b""]
        parts: list[tuple[bytes, bytes]] = []
        for i, chunk in enumerate(chunks):
            ftype = HEADERS if i == 0 else CONTINUATION
            flags = (END_STREAM if end_stream and i == 0 else 0) | (END_HEADERS if i == len(chunks) - 1 else 0)
            length = len(chunk)
            parts.append((FRAME_HEAD.pack(length >> 16, length & 0xFFFF, ftype, flags, 0)[:5], chunk))
        self._parts = tuple(parts)

    def write(self, out: bytearray, sid: int) -> None:
        """Append the frames for stream ``sid`` to ``out``."""
        sid_bytes = U32.pack(sid)
        for head, chunk in self._parts:
            out += head
            out += sid_bytes
            out += chunk


# -- HPACK, decoding --------------------------------------------------------------------------------
def skip_size_updates(block: bytes | bytearray, at: int, end: int) -> int:
    """Skip the dynamic table size updates that may open a header block (RFC 7541 §4.2, §6.3);
    with our table size of 0 the only valid size is 0. Returns the offset past them."""
    while at < end and block[at] & 0xE0 == 0x20:
        if block[at] & 0x1F:  # any non-zero size, multi-byte integers included
            raise WireError("dynamic table size update above our SETTINGS_HEADER_TABLE_SIZE of 0")
        at += 1
    return at


class StatusDecoder:
    """Finds ``:status`` in any response header block the fast path does not recognise (a
    literal status, a status after other fields), with ``hpack``'s decoder; its dynamic table
    is held at size 0, as we told the server, so it keeps no state between blocks."""

    def __init__(self, max_header_list_size: int = 1 << 20) -> None:
        self._decoder = hpack.Decoder(max_header_list_size=max_header_list_size)
        self._decoder.header_table_size = 0
        self._decoder.max_allowed_table_size = 0

    def status(self, block: bytes | bytearray) -> int | None:
        """The ``:status`` of a block (``None`` when it has none); :class:`WireError` when the
        block cannot be decoded."""
        try:
            headers = self._decoder.decode(bytes(block), raw=True)
        except hpack.HPACKError as exc:
            raise WireError(f"undecodable header block: {exc}") from None
        for name, value in headers:
            if name == b":status":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None
