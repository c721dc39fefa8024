"""The local development stack: a real Kafka broker and PostgreSQL on loopback."""
