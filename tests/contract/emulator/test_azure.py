"""The real openai Azure clients against the emulator: deployments, api-version, v1 style."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import openai
import pytest
import pytest_asyncio

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from tokenline.emulator import ProviderEmulator

pytestmark = pytest.mark.contract

API_VERSION = "2024-10-21"
MESSAGES: list[Any] = [{"role": "user", "content": "Hello Azure"}]


@pytest.fixture
def client(emulator: ProviderEmulator) -> Iterator[openai.AzureOpenAI]:
    with openai.AzureOpenAI(
        azure_endpoint=emulator.url, api_key="k", api_version=API_VERSION, max_retries=0
    ) as c:
        yield c


@pytest_asyncio.fixture
async def aclient(emulator: ProviderEmulator) -> AsyncIterator[openai.AsyncAzureOpenAI]:
    async with openai.AsyncAzureOpenAI(
        azure_endpoint=emulator.url, api_key="k", api_version=API_VERSION, max_retries=0
    ) as c:
        yield c


def test_deployment_answers_with_underlying_model(
    client: openai.AzureOpenAI, emulator: ProviderEmulator
) -> None:
    completion = client.chat.completions.create(model="chat-prod", messages=MESSAGES)
    call = emulator.last_call
    assert completion.model == "gpt-4o-2024-08-06"
    assert (call.provider, call.deployment, call.model) == (
        "azure_openai",
        "chat-prod",
        "gpt-4o-2024-08-06",
    )
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == call.usage


def test_unknown_deployment_uses_default_model(
    client: openai.AzureOpenAI, emulator: ProviderEmulator
) -> None:
    completion = client.chat.completions.create(model="other", messages=MESSAGES)
    assert completion.model == "gpt-4o-2024-08-06"
    assert emulator.last_call.deployment == "other"


def test_azure_stream_starts_with_prompt_filter_chunk(
    client: openai.AzureOpenAI, emulator: ProviderEmulator
) -> None:
    stream = client.chat.completions.create(
        model="chat-prod", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[0].choices == []
    assert chunks[0].usage is None
    assert (chunks[0].id, chunks[0].model, chunks[0].object, chunks[0].created) == ("", "", "", 0)
    assert chunks[0].prompt_filter_results  # type: ignore[attr-defined]
    assert chunks[1].id.startswith("chatcmpl-")
    assert chunks[1].model == "gpt-4o-2024-08-06"
    assert chunks[1].choices[0].content_filter_results == {}  # type: ignore[attr-defined]
    assert chunks[2].choices[0].content_filter_results["hate"]["filtered"] is False  # type: ignore[attr-defined]
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump(exclude_none=True) == emulator.last_call.usage


def test_completions_embeddings_and_responses(
    client: openai.AzureOpenAI, emulator: ProviderEmulator
) -> None:
    completion = client.completions.create(model="chat-prod", prompt="Once upon")
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == emulator.last_call.usage
    embedding = client.embeddings.create(model="embed", input="hello")
    assert embedding.usage.model_dump() == emulator.last_call.usage
    assert emulator.last_call.deployment == "embed"
    response = client.responses.create(model="chat-prod", input="Hi")
    assert response.usage is not None
    assert response.usage.model_dump(exclude_none=True) == emulator.last_call.usage
    assert emulator.last_call.route == "responses"


def test_v1_style_base_url(emulator: ProviderEmulator) -> None:
    with openai.OpenAI(base_url=f"{emulator.url}/openai/v1/", api_key="k", max_retries=0) as c:
        completion = c.chat.completions.create(model="chat-prod", messages=MESSAGES)
    assert completion.model == "gpt-4o-2024-08-06"
    assert emulator.last_call.provider == "azure_openai"


@pytest.mark.asyncio
async def test_async_azure(aclient: openai.AsyncAzureOpenAI, emulator: ProviderEmulator) -> None:
    completion = await aclient.chat.completions.create(model="chat-prod", messages=MESSAGES)
    assert completion.usage is not None
    assert completion.usage.model_dump(exclude_none=True) == emulator.last_call.usage
    stream = await aclient.chat.completions.create(
        model="chat-prod", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [c async for c in stream]
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens == emulator.last_call.usage["total_tokens"]
    emulator.fail_next(status=500, provider="azure_openai")
    with pytest.raises(openai.InternalServerError):
        await aclient.chat.completions.create(model="chat-prod", messages=MESSAGES)


def test_azure_rate_limit(client: openai.AzureOpenAI, emulator: ProviderEmulator) -> None:
    emulator.fail_next(status=429, provider="openai")  # another provider's fault is not used
    emulator.fail_next(status=429, provider="azure_openai")
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model="chat-prod", messages=MESSAGES)
    completion = client.chat.completions.create(model="chat-prod", messages=MESSAGES)
    assert completion.usage is not None
