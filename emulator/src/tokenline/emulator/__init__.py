"""A local LLM provider emulator: a real HTTP server speaking each provider's wire format.

Point the real SDK clients (openai, anthropic, boto3 bedrock-runtime, google-genai,
google-generativeai) at :attr:`ProviderEmulator.url` in tests and demos. Standard library only.
"""

from tokenline.emulator._core import Call
from tokenline.emulator._server import ProviderEmulator

__all__ = ["Call", "ProviderEmulator"]
