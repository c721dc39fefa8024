"""``tokenline api``: the HTTP API over the sink's database and the raw topic.

- :mod:`.settings`: ``TOKENLINE_*`` settings of the service;
- :mod:`.keys`: API keys (Argon2id hashes only), their scopes and their store;
- :mod:`.ratelimit`: the per-key token bucket;
- :mod:`.reads`: read endpoints, every number from :mod:`tokenline.sink.report`;
- :mod:`.ingest`, :mod:`.events`: ``POST /v1/usage``: JSON to UsageEvent, produced to Kafka;
- :mod:`.app`: the FastAPI application that wires them; :mod:`.cli`: the click commands.
"""
