"""The CLI and README papercuts of issue 19, each held by a test (no services needed)."""

from __future__ import annotations

import io
import re
import shlex
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

import click
import pytest
from click.testing import CliRunner
from rich.console import Console

from tokenline.cli import main as tokenline
from tokenline.processor.cli_replay import output_console
from tokenline.processor.pricebook import load_price_book
from tokenline.processor.pricing import parse_overrides
from tokenline.processor.replay.state import CostLine, Counts
from tokenline.processor.replay.summary import render, render_counts, summarize
from tokenline.processor.settings import ProcessorSettings
from tokenline.processor.topics import topic_specs

if TYPE_CHECKING:
    from collections.abc import Iterator

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
READMES = [ROOT / "README.md", ROOT / "stream_processor" / "README.md", ROOT / "sink" / "README.md"]


def _readme_commands() -> Iterator[tuple[str, list[str]]]:
    """Every ``tokenline ...`` line in the READMEs' bash blocks, as arguments."""
    for readme in READMES:
        text = readme.read_text(encoding="utf-8")
        for lang, block in re.findall(r"```(\w*)\n(.*?)```", text, flags=re.DOTALL):
            if lang not in ("", "bash"):
                continue
            for line in block.splitlines():
                command = line.split("  #", 1)[0].strip()
                command = command.removeprefix(".venv/bin/")
                if command.startswith("tokenline ") and "…" not in command and "[" not in command:
                    yield readme.name, shlex.split(command)[1:]


def _resolve(args: list[str]) -> tuple[click.Command, list[str]]:
    command: click.Command = tokenline
    ctx = click.Context(tokenline)
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        found = command.get_command(ctx, args[0])
        if found is None:
            break
        command, args = found, args[1:]
    return command, args


@pytest.mark.parametrize(
    ("readme", "args"),
    list(_readme_commands()),
    ids=lambda v: " ".join(v) if isinstance(v, list) else v,
)
def test_every_readme_command_parses(
    readme: str, args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`tokenline prices show gpt-4o` needed PROVIDER MODEL: each documented line must parse."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TOKENLINE_DATABASE_URL", "postgresql://db/tokenline")
    for arg in args:  # files a command line names must exist for click's Path checks
        if re.fullmatch(r"[\w.-]+\.(yaml|json)", arg):
            (tmp_path / arg).write_text("{}", encoding="utf-8")
    command, rest = _resolve(args)
    if isinstance(command, click.Group):
        command, rest = _resolve([command.name or "", *rest]) if not rest else (command, rest)
    command.make_context(command.name or "tokenline", list(rest), resilient_parsing=False)


def test_the_documented_overrides_format_parses() -> None:
    """The overrides YAML format is documented, and the documented example is valid."""
    text = (ROOT / "stream_processor" / "README.md").read_text(encoding="utf-8")
    (example,) = [b for b in re.findall(r"```yaml\n(.*?)```", text, re.DOTALL) if "prices:" in b]
    loaded = parse_overrides(example)
    assert loaded.entries
    assert {"acme", "reseller", "globex"} <= set(loaded.adjustments)
    assert loaded.azure_deployments == {"prod-gpt4o": "gpt-4o"}


def test_a_one_price_what_if_keeps_the_tenant_terms_in_force() -> None:
    """replay --prices FILE merges a YAML over the live book instead of replacing it."""
    live = load_price_book().with_overrides(
        parse_overrides("tenants: {acme: {discount_percent: 20}}\nazure_deployments: {p: gpt-4o}")
    )
    what_if = parse_overrides(
        "prices:\n  - {provider: openai, model: my-finetune, unit: per_million, "
        "input: '1', output: '2'}\n"
    )
    merged = live.with_overrides(what_if)
    assert "acme" in merged.adjustments  # the discount stays
    assert merged.normalizer.azure_deployments == {"p": "gpt-4o"}
    assert len(merged.table) == len(live.table) + 1
    assert merged.pricing_version != live.pricing_version


def _summary_text(dry_run: bool = False) -> str:
    summary = summarize(
        {("acme", "gpt-4o"): CostLine(3, Decimal("0.000001234500"), 0)},
        {
            ("acme", "gpt-4o"): CostLine(3, Decimal("0.000001234567"), 0),
            ("acme", "mystery"): CostLine(2, Decimal(0), 2),
        },
    )
    out = io.StringIO()
    console = Console(file=out, width=300)
    console.print(render(summary, title="t"))
    counts = Counts(read=5, priced=3, unpriced=2)
    console.print(render_counts(counts, rollups=4, rollups_unchanged=1, dry_run=dry_run))
    return out.getvalue()


def test_replay_summary_is_exact_and_says_unpriced() -> None:
    text = _summary_text()
    assert "0.0000012345 " in text  # every digit, not rounded to 6 places
    assert "0.000001234567" in text
    assert "+0.000000000067" in text
    mystery = next(line for line in text.splitlines() if "mystery" in line)
    assert "unpriced" in mystery
    assert "0.000000" not in mystery  # no cost is not $0
    assert "windows re-emitted" in text


def test_a_dry_run_says_how_many_windows_would_change() -> None:
    text = _summary_text(dry_run=True)
    assert re.search(r"windows that would change \(dry run\)\s*│\s*4", text), text


def test_replay_tables_do_not_wrap_in_a_pipe() -> None:
    out = io.StringIO()  # not a terminal
    summary = summarize({}, {("tenant-" + "x" * 60, "model-" + "y" * 60): CostLine(1, Decimal(1))})
    output_console(out).print(render(summary, title="cost"))
    row = next(line for line in out.getvalue().splitlines() if "tenant-x" in line)
    assert "x" * 60 in row
    assert "y" * 60 in row


def test_raw_topic_retention_is_a_setting() -> None:
    specs = {s.name: s for s in topic_specs(ProcessorSettings(raw_retention_ms=-1))}
    assert specs["llm-usage.raw"].config == {"retention.ms": "-1"}
    default = {s.name: s for s in topic_specs(ProcessorSettings())}
    assert "retention.ms" not in default["llm-usage.raw"].config
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "### Raw-topic retention" in readme


def test_time_options_say_which_clock() -> None:
    runner = CliRunner()
    replay_help = runner.invoke(tokenline, ["replay", "--help"], terminal_width=200).output
    report_help = runner.invoke(tokenline, ["report", "totals", "--help"], terminal_width=200)
    assert "UTC unless it has an offset" in replay_help
    assert "tenant-local" in report_help.output


def test_kafka_is_bootstrap_servers_everywhere() -> None:
    runner = CliRunner()
    for args in (["demo"], ["prices", "publish"]):
        text = runner.invoke(tokenline, [*args, "--help"], terminal_width=200).output
        assert "--bootstrap-servers" in text, args


def test_setup_says_what_it_is_doing() -> None:
    """The first setup takes minutes: each long step is announced before it starts."""
    lines = (ROOT / "deploy" / "local" / "setup.sh").read_text(encoding="utf-8").splitlines()
    for marker in ("python3 -m venv .venv", "pip install -q", "tokenline dev jars"):
        index = next(i for i, line in enumerate(lines) if marker in line)
        before = "\n".join(lines[max(0, index - 3) : index])
        assert "echo" in before, marker
