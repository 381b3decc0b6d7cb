"""HMAC-SHA256 by hand and the query-string parser of signed requests, against the stdlib."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qsl

from hypothesis import given
from hypothesis import strategies as st

from overtone.http.query import query_pairs
from overtone.protocol.signatures import sign


@given(st.text(max_size=200), st.text(max_size=300))
def test_sign_agrees_with_hmac(secret: str, message: str) -> None:
    expected = hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert sign(secret, message) == expected


def test_sign_with_keys_around_the_block_size() -> None:
    for length in (0, 1, 63, 64, 65, 127, 128, 129, 1000):
        secret = "k" * length
        expected = hmac.new(secret.encode(), b"POST\n/x\na=1", hashlib.sha256).hexdigest()
        assert sign(secret, "POST\n/x\na=1") == expected, length


@given(st.text(alphabet="ab=&%+2fzé ;", max_size=40))
def test_query_pairs_agree_with_parse_qsl(query: str) -> None:
    assert query_pairs(query) == parse_qsl(query, keep_blank_values=True)
