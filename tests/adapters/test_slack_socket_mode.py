"""Socket Mode: the adapter connects to the emulator's WebSocket, acknowledges envelopes and handles them."""

from __future__ import annotations

import asyncio

from adapters.slack import run_socket_mode
from tests.adapters import slack_payloads as payloads
from tests.adapters.slack_emulator import SlackEmulator
from tests.adapters.slack_harness import COORDINATOR, LEARNER, REVIEWERS, emulator, slack_settings  # noqa: F401


def _acked(emulator: SlackEmulator, envelope: dict) -> dict | None:
    return next((ack for ack in emulator.socket_acks if ack.get("envelope_id") == envelope["envelope_id"]), None)


async def test_socket_mode_routes_envelopes(tmp_path, emulator):
    settings = slack_settings(tmp_path / "data", emulator, slack_mode="socket", slack_signing_secret=None)
    stop = asyncio.Event()
    running = asyncio.create_task(run_socket_mode(settings, stop=stop))
    dm = emulator.direct_channel_of(LEARNER)
    message = payloads.event_callback(payloads.direct_message(LEARNER, dm, "hello"), event_id_="Ev0SOCKET01")

    try:
        first = payloads.envelope(message, "events_api")
        await emulator.send_envelope(first)
        await emulator.wait_for(lambda: _acked(emulator, first))
        await emulator.wait_for_calls("chat.postMessage", 2, channel=dm)

        retry = payloads.envelope(message, "events_api", retry_attempt=1, retry_reason="timeout")
        await emulator.send_envelope(retry)
        await emulator.wait_for(lambda: _acked(emulator, retry))

        command = payloads.envelope(payloads.slash_command(COORDINATOR, REVIEWERS, "report"), "slash_commands")
        await emulator.send_envelope(command)
        await emulator.wait_for(lambda: _acked(emulator, command))
        coordinator_dm = emulator.direct_channel_of(COORDINATOR)
        report = await emulator.wait_for_calls("chat.postMessage", channel=coordinator_dm)
    finally:
        stop.set()
        assert await running == 0

    assert emulator.calls_to("apps.connections.open")
    assert len(emulator.calls_to("chat.postMessage", channel=dm)) == 2
    assert "Only program coordinators" not in report[0].params["blocks"][0]["text"]["text"]
    assert _acked(emulator, command)["payload"] == {"text": "My answer is in our direct messages.",
                                                     "response_type": "ephemeral"}
