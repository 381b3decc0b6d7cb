"""Scenario 4: end-to-end encrypted channels with the Node SDK and pusher-js."""

from __future__ import annotations

import base64

import pytest
from e2e_helpers import run_scenario
from support.servers import ServerProcess

pytestmark = pytest.mark.e2e


def test_encrypted_channel_end_to_end(server: ServerProcess) -> None:
    result = run_scenario(server, "encrypted")
    plaintext = result["plaintext"]

    # pusher-js decrypted what the Node SDK encrypted.
    assert result["decrypted"] == {"text": plaintext, "n": 7}
    # The client event was not relayed on the encrypted channel; the marker was.
    assert result["events"] == ["secret", "marker"]
    assert result["state"] == "connected"
    # The sender was told (Pusher's `pusher:error` with a message), and kept its connection.
    [refusal] = result["raw_errors"]
    assert "encrypted" in refusal["data"]["message"], refusal

    # What the server relayed is the SDK's ciphertext: a 24-byte nonce and a ciphertext.
    relayed = result["relayed_data"]
    assert set(relayed) == {"nonce", "ciphertext"}
    assert len(base64.b64decode(relayed["nonce"])) == 24
    assert len(base64.b64decode(relayed["ciphertext"])) > len(plaintext)
    # No frame the raw subscriber saw, and nothing the server logged, holds the plaintext.
    assert result["raw_frames"]
    assert not [frame for frame in result["raw_frames"] if plaintext in frame]
    assert not [frame for frame in result["raw_frames"] if "client-sneaky" in frame]
    assert plaintext not in server.log()
