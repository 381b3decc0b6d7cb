"""Tests for the lean RFC 6455 frame codec, with ``websockets`` as the oracle."""

from __future__ import annotations

import itertools
import os
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import State
from websockets.speedups import apply_mask as ws_apply_mask
from websockets.streams import StreamReader
from websockets.uri import parse_uri

from overtone.protocol import frames
from overtone.protocol.frames import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    BinaryMessage,
    CloseReceived,
    Event,
    FrameParser,
    Ping,
    Pong,
    ProtocolViolation,
    TextMessage,
    encode_close,
    encode_frame,
    frame_payloads,
)

MASK = b"\x37\xfa\x21\x3d"
VALID_CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]


def client_frame(
    opcode: int,
    payload: bytes = b"",
    *,
    fin: bool = True,
    rsv: int = 0,
    masked: bool = True,
    length: int | None = None,
) -> bytes:
    """Hand-build a client frame, including malformed ones websockets refuses to serialize."""
    n = len(payload) if length is None else length
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    mask_bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([mask_bit | n])
    elif n < 0x10000:
        head += bytes([mask_bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([mask_bit | 127]) + struct.pack("!Q", n)
    if not masked:
        return head + payload
    return head + MASK + bytes(b ^ MASK[i % 4] for i, b in enumerate(payload))


def feed_all(parser: FrameParser, chunks: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events.extend(parser.feed(chunk))
    return events


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = [0, *sorted(c % (len(data) + 1) for c in cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(points)]


def violation(data: bytes | list[bytes], max_size: int = 1 << 20) -> ProtocolViolation:
    parser = FrameParser(max_size)
    with pytest.raises(ProtocolViolation) as info:
        feed_all(parser, [data] if isinstance(data, bytes) else data)
    assert parser.feed(client_frame(OP_TEXT, b"after")) == []
    return info.value


# --- well-formed input -----------------------------------------------------------------------


def test_single_text_frame() -> None:
    assert FrameParser(100).feed(client_frame(OP_TEXT, "héllo".encode())) == [TextMessage("héllo")]


def test_empty_and_binary_frames() -> None:
    parser = FrameParser(100)
    data = client_frame(OP_TEXT) + client_frame(OP_BINARY, b"\x00\xff") + client_frame(OP_BINARY)
    assert parser.feed(data) == [TextMessage(""), BinaryMessage(b"\x00\xff"), BinaryMessage(b"")]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_length_forms_whole_and_chunked(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    data = client_frame(OP_BINARY, payload)
    assert FrameParser(size).feed(data) == [BinaryMessage(payload)]
    parser = FrameParser(size)
    assert feed_all(parser, split(data, [1, 3, 7, 11, 4000])) == [BinaryMessage(payload)]
    assert parser._buf == b""


def test_ping_pong_close() -> None:
    data = client_frame(OP_PING, b"p") + client_frame(OP_PONG) + client_frame(OP_CLOSE)
    assert FrameParser(10).feed(data) == [Ping(b"p"), Pong(b""), CloseReceived(None, "")]


@pytest.mark.parametrize("code", VALID_CLOSE_CODES)
def test_valid_close_codes(code: int) -> None:
    data = client_frame(OP_CLOSE, struct.pack("!H", code) + "bye ✓".encode())
    assert FrameParser(10).feed(data) == [CloseReceived(code, "bye ✓")]


def test_fragmented_message_with_interleaved_control_frames() -> None:
    text = "fragmented ✓ message".encode()
    data = (
        client_frame(OP_TEXT, text[:11], fin=False)  # cut inside the 3-byte "✓"
        + client_frame(OP_PING, b"1")
        + client_frame(OP_CONT, text[11:12], fin=False)
        + client_frame(OP_PONG, b"2")
        + client_frame(OP_CONT, text[12:])
        + client_frame(OP_BINARY, b"next")
    )
    expected: list[Event] = [
        Ping(b"1"),
        Pong(b"2"),
        TextMessage(text.decode()),
        BinaryMessage(b"next"),
    ]
    assert FrameParser(100).feed(data) == expected
    parser = FrameParser(100)
    assert feed_all(parser, [data[i : i + 1] for i in range(len(data))]) == expected
    assert parser._buf == b""
    assert parser._frag is None


def test_byte_by_byte_yields_events_as_soon_as_complete() -> None:
    first = client_frame(OP_TEXT, b"a")
    parser = FrameParser(10)
    outputs = [parser.feed(bytes([b])) for b in first + client_frame(OP_TEXT, b"b")]
    assert outputs[len(first) - 1] == [TextMessage("a")]
    assert outputs[-1] == [TextMessage("b")]
    assert sum(len(o) for o in outputs) == 2


def test_idle_parser_holds_only_an_empty_bytes_object() -> None:
    parser = FrameParser(1000)
    data = client_frame(OP_TEXT, b"x" * 300)
    parser.feed(data[:5])
    assert isinstance(parser._buf, bytearray)
    assert parser.feed(data[5:]) == [TextMessage("x" * 300)]
    idle: object = parser._buf
    assert type(idle) is bytes
    assert idle == b""
    assert not hasattr(parser, "__dict__")


def test_close_finishes_the_parser_and_discards_what_follows() -> None:
    parser = FrameParser(10)
    data = client_frame(OP_CLOSE, b"\x03\xe8") + client_frame(OP_TEXT, b"late")
    assert parser.feed(data) == [CloseReceived(1000, "")]
    assert parser.feed(client_frame(OP_TEXT, b"later")) == []


def test_message_exactly_at_max_size_is_accepted() -> None:
    parser = FrameParser(4)
    data = client_frame(OP_TEXT, b"ab", fin=False) + client_frame(OP_CONT, b"cd")
    assert parser.feed(data) == [TextMessage("abcd")]


# --- violations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "code"),
    [
        pytest.param(client_frame(OP_TEXT, b"hi", masked=False), 1002, id="unmasked"),
        pytest.param(client_frame(OP_PING, masked=False), 1002, id="unmasked-control"),
        pytest.param(client_frame(OP_TEXT, b"hi", rsv=4), 1002, id="rsv1"),
        pytest.param(client_frame(OP_TEXT, b"hi", rsv=2), 1002, id="rsv2"),
        pytest.param(client_frame(OP_PING, rsv=1), 1002, id="rsv3"),
        *(
            pytest.param(client_frame(op, b"x"), 1002, id=f"opcode-{op:#x}")
            for op in (3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF)
        ),
        pytest.param(client_frame(OP_PING, b"x" * 126), 1002, id="ping-126"),
        pytest.param(client_frame(OP_CLOSE, b"\x03\xe8" + b"x" * 124), 1002, id="close-126"),
        pytest.param(client_frame(OP_PONG, b"x", fin=False), 1002, id="pong-not-fin"),
        pytest.param(client_frame(OP_CONT, b"x"), 1002, id="orphan-continuation"),
        pytest.param(client_frame(OP_CONT, b"x", fin=False), 1002, id="orphan-continuation-2"),
        pytest.param(
            client_frame(OP_TEXT, b"a", fin=False) + client_frame(OP_TEXT, b"b"),
            1002,
            id="text-while-fragmented",
        ),
        pytest.param(
            client_frame(OP_BINARY, b"a", fin=False) + client_frame(OP_BINARY, b"b", fin=False),
            1002,
            id="binary-while-fragmented",
        ),
        pytest.param(client_frame(OP_TEXT, b"\xff"), 1007, id="bad-utf8-fast-path"),
        pytest.param(client_frame(OP_TEXT, b"\xc3" * 200), 1007, id="bad-utf8-slow-path"),
        pytest.param(
            client_frame(OP_TEXT, b"ok \xe2\x9c", fin=False) + client_frame(OP_CONT, b"!"),
            1007,
            id="bad-utf8-fragmented",
        ),
        pytest.param(client_frame(OP_CLOSE, b"\x03"), 1002, id="close-1-byte"),
        pytest.param(client_frame(OP_CLOSE, b"\x03\xe8\xff"), 1007, id="close-bad-utf8"),
        *(
            pytest.param(client_frame(OP_CLOSE, struct.pack("!H", c)), 1002, id=f"close-{c}")
            for c in (0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535)
        ),
    ],
)
def test_violations(data: bytes, code: int) -> None:
    exc = violation(data)
    assert exc.close_code == code
    assert exc.reason
    assert len(encode_close(exc.close_code, exc.reason)) <= 127
    # Same outcome when the bytes trickle in one at a time.
    assert violation([data[i : i + 1] for i in range(len(data))]).close_code == code


def test_violation_messages_say_what_is_wrong() -> None:
    assert "mask" in violation(client_frame(OP_TEXT, b"x", masked=False)).reason
    assert "RSV" in violation(client_frame(OP_TEXT, b"x", rsv=4)).reason
    assert "opcode" in violation(client_frame(3)).reason
    assert "UTF-8" in violation(client_frame(OP_TEXT, b"\xff")).reason
    assert "1005" in violation(client_frame(OP_CLOSE, b"\x03\xed")).reason
    assert "100" in violation(client_frame(OP_TEXT, b"x" * 101), max_size=100).reason


@pytest.mark.parametrize("size", [11, 200, 70000])
def test_single_frame_over_max_size(size: int) -> None:
    assert violation(client_frame(OP_BINARY, b"x" * size), max_size=10).close_code == 1009


def test_huge_declared_length_is_refused_from_the_header_alone() -> None:
    header = client_frame(OP_BINARY, length=1 << 62)[:10]  # no mask, no payload yet
    assert violation(header, max_size=1 << 20).close_code == 1009
    header = client_frame(OP_TEXT, length=1 << 15)[:4]  # 16-bit length form
    assert violation(header, max_size=1000).close_code == 1009


def test_64_bit_length_with_top_bit_set() -> None:
    header = bytes([0x82, 0xFF]) + struct.pack("!Q", 1 << 63)
    assert violation(header, max_size=1 << 20).close_code == 1002


def test_sum_of_fragments_over_max_size() -> None:
    data = client_frame(OP_TEXT, b"x" * 6, fin=False) + client_frame(OP_CONT, b"x" * 6)
    assert violation(data, max_size=10).close_code == 1009


def test_violation_keeps_events_completed_before_it() -> None:
    data = client_frame(OP_TEXT, b"ok") + client_frame(OP_PING) + client_frame(3)
    exc = violation(data)
    assert exc.events == [TextMessage("ok"), Ping(b"")]


# --- encoding ----------------------------------------------------------------------------------


def ws_parse_server_frame(data: bytes) -> Frame:
    """Parse one server->client frame with websockets' own parser; it must use all of ``data``."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    with pytest.raises(StopIteration) as info:
        next(parser)
    assert not reader.buffer, "trailing bytes after the frame"
    frame = info.value.value
    assert isinstance(frame, Frame)
    return frame


@pytest.mark.parametrize(("size", "header"), [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)])
def test_encode_frame_length_forms(size: int, header: int) -> None:
    payload = bytes(i % 256 for i in range(size))
    data = encode_frame(payload, OP_BINARY)
    assert len(data) == header + size
    frame = ws_parse_server_frame(data)
    assert (frame.opcode, frame.fin, bytes(frame.data)) == (Opcode.BINARY, True, payload)


def test_encode_frame_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="opcode"):
        encode_frame(b"", 3)
    with pytest.raises(ValueError, match="125"):
        encode_frame(b"x" * 126, OP_PING)


def test_encode_close_truncates_on_a_utf8_boundary() -> None:
    reason = "é" * 100  # 200 bytes
    data = encode_close(1000, reason)
    assert len(data) == 2 + 2 + 122  # 61 two-byte characters fit in 123 bytes
    close = Close.parse(ws_parse_server_frame(data).data)
    assert (close.code, close.reason) == (1000, "é" * 61)
    with pytest.raises(ValueError, match="1005"):
        encode_close(1005)


def open_client() -> ClientProtocol:
    return ClientProtocol(parse_uri("ws://localhost/app/key"), state=State.OPEN, max_size=None)


@given(
    messages=st.lists(
        st.one_of(
            st.text(max_size=300).map(lambda t: (OP_TEXT, t.encode())),
            st.binary(max_size=300).map(lambda b: (OP_BINARY, b)),
            st.sampled_from([126, 65535, 65536]).map(lambda n: (OP_BINARY, b"\x5a" * n)),
            st.binary(max_size=125).map(lambda b: (OP_PING, b)),
            st.binary(max_size=125).map(lambda b: (OP_PONG, b)),
        ),
        max_size=5,
    ),
    code=st.sampled_from(VALID_CLOSE_CODES),
    reason=st.text(max_size=130),
)
@settings(max_examples=60)
def test_encoded_frames_parse_back_with_a_websockets_client(
    messages: list[tuple[int, bytes]], code: int, reason: str
) -> None:
    client = open_client()
    client.receive_data(b"".join(encode_frame(p, op) for op, p in messages))
    client.receive_data(encode_close(code, reason))
    received = [e for e in client.events_received() if isinstance(e, Frame)]
    assert [(int(f.opcode), bytes(f.data)) for f in received[:-1]] == messages
    close = Close.parse(received[-1].data)
    assert close.code == code
    assert reason.startswith(close.reason)
    assert len(received[-1].data) <= 125


# --- property tests: websockets serializes as a real client, we parse ------------------------

control = st.tuples(st.sampled_from([OP_PING, OP_PONG]), st.binary(max_size=125))


@st.composite
def client_streams(draw: st.DrawFn) -> tuple[list[bytes], list[Event]]:
    """Random masked client frames (fragmented messages, interleaved controls) and the events."""
    frames_out: list[bytes] = []
    expected: list[Event] = []

    def add_control() -> None:
        op, payload = draw(control)
        frames_out.append(Frame(Opcode(op), payload).serialize(mask=True))
        expected.append(Ping(payload) if op == OP_PING else Pong(payload))

    message: Event
    for _ in range(draw(st.integers(0, 6))):
        if draw(st.booleans()):
            add_control()
            continue
        if draw(st.booleans()):
            text = draw(st.text(max_size=200))
            op, data, message = OP_TEXT, text.encode(), TextMessage(text)
        else:
            data = draw(st.binary(max_size=600))
            op, message = OP_BINARY, BinaryMessage(data)
        cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=4)))
        pieces = split(data, cuts)
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            frames_out.append(
                Frame(Opcode(op if i == 0 else OP_CONT), piece, fin=last).serialize(mask=True)
            )
            if not last and draw(st.booleans()):
                add_control()
        expected.append(message)
    if draw(st.booleans()):
        code = draw(st.sampled_from(VALID_CLOSE_CODES))
        reason = draw(st.text(max_size=30))
        frames_out.append(Frame(Opcode.CLOSE, Close(code, reason).serialize()).serialize(mask=True))
        expected.append(CloseReceived(code, reason))
    return frames_out, expected


@given(stream=client_streams(), cuts=st.lists(st.integers(0, 10**6), max_size=20))
def test_parses_what_a_websockets_client_sends(
    stream: tuple[list[bytes], list[Event]], cuts: list[int]
) -> None:
    wire, expected = stream
    data = b"".join(wire)
    assert FrameParser(1000).feed(data) == expected
    parser = FrameParser(1000)
    assert feed_all(parser, split(data, cuts)) == expected
    assert parser._buf == b""
    assert parser._frag is None


@given(
    messages=st.lists(st.one_of(st.text(max_size=100), st.binary(max_size=100)), max_size=6),
    fragment=st.booleans(),
    cuts=st.lists(st.integers(0, 10**4), max_size=10),
)
def test_parses_a_websockets_client_protocol_session(
    messages: list[str | bytes], fragment: bool, cuts: list[int]
) -> None:
    client = open_client()
    expected: list[Event] = []
    event: Event
    for message in messages:
        if isinstance(message, str):
            data, send, event = message.encode(), client.send_text, TextMessage(message)
        else:
            data, send, event = message, client.send_binary, BinaryMessage(message)
        if fragment and len(data) > 1:
            send(data[:1], fin=False)
            client.send_ping(b"keepalive")
            expected.append(Ping(b"keepalive"))
            client.send_continuation(data[1:], fin=True)
        else:
            send(data)
        expected.append(event)
    client.send_close(1000, "bye")
    expected.append(CloseReceived(1000, "bye"))
    wire = b"".join(client.data_to_send())
    assert feed_all(FrameParser(1000), split(wire, cuts)) == expected


def outcome(parser: FrameParser, chunks: list[bytes]) -> tuple[list[Event], int | None]:
    events: list[Event] = []
    try:
        for chunk in chunks:
            events.extend(parser.feed(chunk))
    except ProtocolViolation as exc:
        return events + exc.events, exc.close_code
    return events, None


arbitrary_frames = st.builds(
    client_frame,
    st.integers(0, 15),
    st.one_of(st.binary(max_size=140), st.text(max_size=40).map(str.encode)),
    fin=st.booleans(),
    rsv=st.sampled_from([0, 0, 0, 0, 1, 4]),
    masked=st.sampled_from([True, True, True, True, False]),
)


@given(wire=st.lists(arbitrary_frames, max_size=8), cuts=st.lists(st.integers(0, 2000)))
def test_outcome_does_not_depend_on_chunking(wire: list[bytes], cuts: list[int]) -> None:
    data = b"".join(wire)
    whole = outcome(FrameParser(100), [data])
    assert outcome(FrameParser(100), split(data, cuts)) == whole
    assert outcome(FrameParser(100), [data[i : i + 1] for i in range(len(data))]) == whole


@given(payload=st.binary(max_size=125), text=st.text(max_size=125))
def test_fast_and_general_paths_agree(payload: bytes, text: str) -> None:
    for body in (payload, text.encode()[:125]):
        data = client_frame(OP_TEXT, body)
        assert outcome(FrameParser(200), [data]) == outcome(FrameParser(200), [data[:1], data[1:]])


@given(data=st.binary(max_size=300), mask=st.binary(min_size=4, max_size=4))
def test_pure_python_mask_matches_websockets_speedup(data: bytes, mask: bytes) -> None:
    assert frames._py_apply_mask(data, mask) == ws_apply_mask(data, mask)


def test_works_without_websockets_installed() -> None:
    script = (
        "import sys; sys.modules['websockets'] = None\n"
        "from overtone.protocol import frames as f\n"
        "assert f._apply_mask is f._py_apply_mask\n"
        "frame = bytes([0x81, 0x82, 1, 2, 3, 4, ord('h') ^ 1, ord('i') ^ 2])\n"
        "assert f.FrameParser(10).feed(frame) == [f.TextMessage('hi')]\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    subprocess.run([sys.executable, "-c", script], check=True, env=env, timeout=60)


@given(st.lists(st.binary(max_size=70_000), max_size=4))
@settings(max_examples=60)
def test_frame_payloads_undo_encode_frame_of_frames_written_together(
    payloads: list[bytes],
) -> None:
    assert frame_payloads(b"".join(encode_frame(p) for p in payloads)) == payloads
