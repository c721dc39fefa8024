"""The emulator itself: lifecycle, record, faults, routing and its ``tokenline`` command."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from importlib.metadata import entry_points

import pytest
from click.testing import CliRunner

from tokenline.emulator import Call, ProviderEmulator
from tokenline.emulator.cli import emulator as emulator_command

pytestmark = pytest.mark.contract


def _post(url: str, body: object) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_lifecycle_binds_a_free_local_port() -> None:
    server = ProviderEmulator()
    with server:
        assert server.url.startswith("http://127.0.0.1:")
        status, _ = _post(f"{server.url}/v1/embeddings", {"model": "m", "input": "x"})
        assert status == 200
    with pytest.raises(RuntimeError):
        _ = server.url


def test_record_and_reset(emulator: ProviderEmulator) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "abcdefgh"}]}
    status, reply = _post(f"{emulator.url}/v1/chat/completions", body)
    assert status == 200
    assert emulator.calls == [
        Call("openai", "chat.completions", "gpt-4o", reply["usage"], 200, streamed=False)  # type: ignore[arg-type]
    ]
    assert emulator.last_call.usage["prompt_tokens"] == 2  # 8 characters / 4
    emulator.reset()
    assert emulator.calls == []


def test_unknown_route_is_404_and_not_recorded(emulator: ProviderEmulator) -> None:
    status, _ = _post(f"{emulator.url}/v9/nothing", {})
    assert status == 404
    assert emulator.calls == []


def test_bad_request_is_answered_in_provider_format(emulator: ProviderEmulator) -> None:
    status, reply = _post(f"{emulator.url}/v1/messages", {"max_tokens": 5})
    assert status == 400
    assert reply["type"] == "error"
    assert emulator.last_call.status == 400


def test_faults_are_scoped_by_provider_and_count(emulator: ProviderEmulator) -> None:
    emulator.fail_next(status=503, times=2, provider="gemini")
    url = f"{emulator.url}/v1beta/models/gemini-2.5-pro:generateContent"
    body = {"contents": [{"parts": [{"text": "hi"}]}]}
    assert _post(f"{emulator.url}/v1/embeddings", {"model": "m", "input": "x"})[0] == 200
    assert _post(url, body)[0] == 503
    status, reply = _post(url, body)
    assert (status, reply["error"]["status"]) == (503, "UNAVAILABLE")  # type: ignore[index]
    assert _post(url, body)[0] == 200


def test_delay_next(emulator: ProviderEmulator) -> None:
    emulator.delay_next(0.3)
    started = time.monotonic()
    _post(f"{emulator.url}/v1/embeddings", {"model": "m", "input": "x"})
    assert time.monotonic() - started >= 0.3


def test_command_is_registered() -> None:
    (entry,) = [e for e in entry_points(group="tokenline.commands") if e.name == "emulator"]
    assert entry.load() is emulator_command
    result = CliRunner().invoke(emulator_command, ["--help"])
    assert result.exit_code == 0
    assert "--port" in result.output
