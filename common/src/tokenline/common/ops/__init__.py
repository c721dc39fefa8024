"""What every long-running Tokenline part shares to be operated.

Exit codes, startup checks, configuration problems named by their environment variable, logs
(text or JSON), rate-limited client noise, health and readiness, and the default metrics.

The processor and the sink are independent of each other and both build on
``tokenline.common``, so this plumbing lives here. It imports confluent-kafka, psycopg and
prometheus-client only inside the functions that need them (the parts that call those
functions install them).
"""
