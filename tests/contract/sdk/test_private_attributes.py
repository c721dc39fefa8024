"""The provider libraries' private attributes the adapters read, each checked on the real library.

A provider library may move a private attribute in any release; the adapters read a few
(see ``tokenline.sdk.providers._supported``). Each has a test here on the installed library,
so an upgrade that moves one fails by name instead of metering a call as the wrong provider.
The processor reads one of aiokafka's (``AIOKafkaConsumer._client``): its test is in
``tests/unit/processor/test_private_attributes.py``.
"""

from __future__ import annotations

import anthropic
import openai
import pytest
from google import genai

from tokenline.sdk.providers._anthropic import ADAPTER as ANTHROPIC
from tokenline.sdk.providers._genai import ADAPTER as GENAI
from tokenline.sdk.providers._openai import ADAPTER as OPENAI

pytestmark = pytest.mark.contract


def test_openai_resources_hold_their_client_as_client() -> None:
    """``resource._client``: ``instrument()`` tells Azure from OpenAI by it."""
    plain = openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9")
    azure = openai.AzureOpenAI(api_key="k", api_version="2024-10-21", azure_endpoint="http://x")
    for client in (plain, azure):
        for resource in (client.chat.completions, client.responses, client.embeddings):
            assert resource._client is client, f"openai {openai.__version__} moved _client"
    assert {patch.provider_of(azure.chat.completions) for patch in OPENAI.patches} == {
        "azure_openai"
    }


def test_anthropic_resources_hold_their_client_as_client() -> None:
    """``resource._client``: ``instrument()`` tells Bedrock and Vertex AI from Anthropic by it."""
    plain = anthropic.Anthropic(api_key="k", base_url="http://127.0.0.1:9")
    bedrock = anthropic.AnthropicBedrock(aws_region="us-east-1", aws_access_key="a",
                                         aws_secret_key="b")  # fmt: skip
    for client in (plain, bedrock):
        assert client.messages._client is client, f"anthropic {anthropic.__version__} moved it"
    providers = {patch.provider_of(bedrock.messages) for patch in ANTHROPIC.patches}
    assert providers == {"bedrock"}


def test_genai_clients_say_vertex_ai_in_their_api_client() -> None:
    """``Client._api_client.vertexai``: Gemini and Vertex AI are told apart by it."""
    client = genai.Client(api_key="k")
    assert client._api_client.vertexai is not True, f"google-genai {genai.__version__}"
    assert GENAI.provider_of(client) == "gemini"


def test_genai_chats_send_through_their_modules() -> None:
    """``Chats._modules``: a chat's requests go through it, so the adapter meters it."""
    client = genai.Client(api_key="k")
    for chats in (client.chats, client.aio.chats):
        modules = chats._modules
        assert callable(modules.generate_content), f"google-genai {genai.__version__}"
        assert callable(modules.generate_content_stream)
