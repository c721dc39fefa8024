"""The legacy google-generativeai 0.8 SDK (REST transport) against the emulator.

The package is end-of-life; it defaults to gRPC, so these tests force ``transport="rest"``.
It is imported inside the fixture so its import-time warnings fall under this module's marks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from tokenline.emulator import ProviderEmulator

pytestmark = [
    pytest.mark.contract,
    # google.generativeai announces its end of support at import time...
    pytest.mark.filterwarnings(
        "ignore:\\s*All support for the `google.generativeai` package has ended:FutureWarning"
    ),
    # ...and the google.api_core it imports warns about the Python version's support window.
    pytest.mark.filterwarnings(
        "ignore:You are using a Python version .* which Google will stop supporting:FutureWarning"
    ),
]

MODEL = "gemini-1.5-flash"
NO_RETRY: dict[str, Any] = {"retry": None}


@pytest.fixture
def legacy(emulator: ProviderEmulator) -> Any:
    import google.generativeai

    legacy_genai: Any = google.generativeai
    legacy_genai.configure(
        api_key="k", transport="rest", client_options={"api_endpoint": emulator.url}
    )
    return legacy_genai


def _same(usage: Any, wire: dict[str, Any]) -> None:
    assert usage.prompt_token_count == wire["promptTokenCount"]
    assert usage.candidates_token_count == wire["candidatesTokenCount"]
    assert usage.total_token_count == wire["totalTokenCount"]
    assert usage.cached_content_token_count == wire.get("cachedContentTokenCount", 0)


def test_generate_content(legacy: Any, emulator: ProviderEmulator) -> None:
    model = legacy.GenerativeModel(MODEL)
    response = model.generate_content("Hello legacy", request_options=NO_RETRY)
    assert response.text
    _same(response.usage_metadata, emulator.last_call.usage)
    assert emulator.last_call.route == "generateContent"


def test_stream_is_a_json_array_with_cumulative_usage(
    legacy: Any, emulator: ProviderEmulator
) -> None:
    model = legacy.GenerativeModel(MODEL, generation_config={"max_output_tokens": 4})
    response = model.generate_content("Hello", stream=True, request_options=NO_RETRY)
    counts = [chunk.usage_metadata.candidates_token_count for chunk in response]
    assert counts == [1, 2, 3, 4]
    _same(response.usage_metadata, emulator.last_call.usage)
    assert emulator.last_call.streamed


def test_chat_send_message(legacy: Any, emulator: ProviderEmulator) -> None:
    chat = legacy.GenerativeModel(MODEL).start_chat()
    first = chat.send_message("Hi", request_options=NO_RETRY)
    _same(first.usage_metadata, emulator.last_call.usage)
    second = chat.send_message("And again", request_options=NO_RETRY)
    _same(second.usage_metadata, emulator.last_call.usage)
    # the history is sent back, so the second prompt is larger
    assert second.usage_metadata.prompt_token_count > first.usage_metadata.prompt_token_count
    streamed = chat.send_message("Stream it", stream=True, request_options=NO_RETRY)
    for _ in streamed:
        pass
    _same(streamed.usage_metadata, emulator.last_call.usage)
    assert len(chat.history) == 6


def test_injected_errors(legacy: Any, emulator: ProviderEmulator) -> None:
    from google.api_core import exceptions

    model = legacy.GenerativeModel(MODEL)
    emulator.fail_next(status=429, provider="gemini")
    with pytest.raises(exceptions.TooManyRequests):
        model.generate_content("Hi", request_options=NO_RETRY)
    emulator.fail_next(status=500)
    with pytest.raises(exceptions.InternalServerError):
        model.generate_content("Hi", request_options=NO_RETRY)


def test_cut_stream_raises(legacy: Any, emulator: ProviderEmulator) -> None:
    import requests

    emulator.cut_next_stream(after_events=2)
    response = legacy.GenerativeModel(MODEL).generate_content(
        "Hi", stream=True, request_options=NO_RETRY
    )
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        for _ in response:
            pass
