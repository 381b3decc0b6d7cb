"""``--debug`` logs each frame, also when a recovery replay writes several at once."""

from __future__ import annotations

import logging

import pytest

from overtone.protocol.frames import encode_close, encode_frame
from overtone.transport.debug import debug_writer, payloads


def test_every_frame_of_a_joined_write_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    big = b'{"event":"e","data":"' + b"x" * 70_000 + b'"}'  # a 10-byte header
    middle = b'{"event":"m","data":"' + b"y" * 200 + b'"}'  # a 4-byte header
    frames = [encode_frame(b'{"event":"a"}'), encode_frame(middle), encode_frame(big)]
    written: list[bytes] = []
    with caplog.at_level(logging.DEBUG, logger="overtone.frames"):
        debug_writer(written.append)(b"".join(frames))
    assert written == [b"".join(frames)]
    assert list(payloads(b"".join(frames))) == [b'{"event":"a"}', middle, big]
    assert [r.getMessage()[:14] for r in caplog.records] == [
        '-> {"event":"a',
        '-> {"event":"m',
        '-> {"event":"e',
    ]


def test_a_close_frame_is_logged_as_its_code_and_reason(caplog: pytest.LogCaptureFixture) -> None:
    error = encode_frame(b'{"event":"pusher:error"}')
    with caplog.at_level(logging.DEBUG, logger="overtone.frames"):
        debug_writer(lambda data: None)(error + encode_close(4007, "Unsupported protocol"))
    assert [r.getMessage() for r in caplog.records] == [
        '-> {"event":"pusher:error"}',
        "-> close 4007 Unsupported protocol",
    ]
