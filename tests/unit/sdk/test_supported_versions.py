"""The provider library ranges the SDK supports: read from its extras, checked when wrapping."""

from __future__ import annotations

import importlib.metadata
import tomllib
import warnings
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tokenline.sdk import UnsupportedProviderVersion
from tokenline.sdk.providers import _supported

pytestmark = pytest.mark.unit

PYPROJECT = Path(__file__).resolve().parents[3] / "producer_sdk" / "pyproject.toml"


def _declared() -> dict[str, str]:
    """Each provider distribution's range as producer_sdk/pyproject.toml writes it."""
    extras = tomllib.loads(PYPROJECT.read_text())["project"]["optional-dependencies"]
    found: dict[str, str] = {}
    for requirements in extras.values():
        for text in requirements:
            requirement = Requirement(text)
            if requirement.name in _supported.DISTRIBUTIONS.values():
                found[requirement.name] = str(requirement.specifier)
    return found


def test_the_ranges_are_the_extras_of_the_pyproject() -> None:
    declared = _declared()
    assert set(declared) == set(_supported.DISTRIBUTIONS.values())
    assert {name: str(spec) for name, spec in _supported.supported().items()} == declared


@pytest.mark.parametrize("distribution", sorted(set(_supported.DISTRIBUTIONS.values())))
def test_the_installed_provider_libraries_are_supported(distribution: str) -> None:
    assert _supported.verdict(distribution, importlib.metadata.version(distribution)) is None


@pytest.mark.parametrize(
    ("distribution", "installed"),
    [("openai", "1.99.9"), ("openai", "4.0.0"), ("anthropic", "0.69.0"), ("boto3", "2.0.0"),
     ("google-genai", "1.29.0"), ("google-generativeai", "0.9.0")],
)  # fmt: skip
def test_a_version_outside_the_range_is_named_with_the_range(
    distribution: str, installed: str
) -> None:
    message = _supported.verdict(distribution, installed)
    assert message is not None
    assert f"{distribution} {installed} is installed" in message
    assert str(_supported.supported()[distribution]) in message


def test_an_unsupported_library_warns_once_when_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_supported, "_warned", set())
    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "1.0.0" if name == "openai" else real(name),
    )
    with pytest.warns(UnsupportedProviderVersion, match=r"openai 1\.0\.0 is installed"):
        _supported.check_installed("openai")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _supported.check_installed("openai")  # once per library


def test_a_supported_library_wraps_without_a_warning() -> None:
    import openai

    from tokenline import sdk

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sdk.wrap(openai.OpenAI(api_key="k", base_url="http://127.0.0.1:9"), tenant_id="acme")
