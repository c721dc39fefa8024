"""What every Tokenline part shares besides the event contract.

Settings (``settings``: how a ``TOKENLINE_*`` setting is read, parsed and validated, every
problem listed and named) and the one configuration error (``errors.ConfigError``). It imports
nothing of ours, so the SDK, the processor and the sink may all build on it.
"""
