"""``tokenline emulator``: run the provider emulator in the foreground."""

from __future__ import annotations

import click

from tokenline.emulator._server import ProviderEmulator


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=0, type=int, help="Port to bind (0: a free port).")
def emulator(host: str, port: int) -> None:
    """Serve the OpenAI, Azure OpenAI, Anthropic, Bedrock and Gemini emulator."""
    server = ProviderEmulator(host=host, port=port).start()
    click.echo(f"tokenline provider emulator listening on {server.url}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
