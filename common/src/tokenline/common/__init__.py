"""What every Tokenline part shares besides the event contract.

Settings (``settings``: how a ``TOKENLINE_*`` setting is read, parsed and validated, every
problem listed and named), the one configuration error (``errors.ConfigError``), Kafka
security for every client (``kafka_security``) and what a long-running part needs to be
operated (``ops``: exit codes, startup checks, logs, health, metrics). It imports nothing of
ours, so the SDK, the processor and the sink may all build on it; the ``tokenline`` command
root (``tokenline.cli``) ships beside it.
"""
