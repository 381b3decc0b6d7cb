"""Scenario 4: end-to-end encrypted channels with the Node SDK, the PyPI SDK and pusher-js."""

from __future__ import annotations

import base64

import pytest

from e2e.e2e_helpers import Scenario, python_sdk
from support.servers import ServerProcess

pytestmark = pytest.mark.e2e

PY_SECRET = "meet me by the old oak"


def test_encrypted_channel_end_to_end(server: ServerProcess) -> None:
    with Scenario(server, "encrypted") as run:
        stage = run.wait_stage("python")
        with python_sdk(server, encryption_master_key_base64=stage["master_key"]) as sdk:
            assert sdk.trigger(stage["channel"], "py-secret", {"text": PY_SECRET}) == {}
        run.resume("python")
        result = run.finish()
    plaintext = result["plaintext"]

    # pusher-js decrypted what the Node SDK and the PyPI SDK encrypted.
    assert result["decrypted"] == {"text": plaintext, "n": 7}
    assert result["decrypted_from_python"] == {"text": PY_SECRET}
    # The client event was not relayed on the encrypted channel; the marker was.
    assert result["events"] == ["secret", "marker", "py-secret"]
    assert result["state"] == "connected"
    # The sender was told (Pusher's `pusher:error` with a message), and kept its connection.
    [refusal] = result["raw_errors"]
    assert "encrypted" in refusal["data"]["message"], refusal

    # What the server relayed is the SDK's ciphertext: a 24-byte nonce and a ciphertext.
    relayed = result["relayed_data"]
    assert set(relayed) == {"nonce", "ciphertext"}
    assert len(base64.b64decode(relayed["nonce"])) == 24
    assert len(base64.b64decode(relayed["ciphertext"])) > len(plaintext)
    # No frame the raw subscriber saw, and nothing the server logged, holds a plaintext.
    assert len(result["raw_frames"]) >= 5
    for secret in (plaintext, PY_SECRET):
        assert not [frame for frame in result["raw_frames"] if secret in frame], secret
        assert secret not in server.log()
    assert not [frame for frame in result["raw_frames"] if "client-sneaky" in frame]
