"""The Faust app, built by a factory from settings, and running a worker."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from tokenline.common.kafka_security import KafkaSecurity, librdkafka_config
from tokenline.common.ops.health import Health, HealthServer
from tokenline.common.ops.preflight import kafka_problem
from tokenline.processor.agents import wire
from tokenline.processor.enrich import load_rules
from tokenline.processor.metrics import Metrics
from tokenline.processor.pricebook import load_price_book
from tokenline.processor.runtime import ProcessorRuntime
from tokenline.processor.topics import ensure_topics, topic_specs

if TYPE_CHECKING:
    from tokenline.processor.settings import ProcessorSettings

__all__ = ["create_app", "run_worker"]

log = logging.getLogger(__name__)

_CHATTY_LOGGERS = ("aiokafka", "faust", "mode")
_PROBE_TIMEOUT_S = 3.0


def create_app(
    settings: ProcessorSettings, metrics: Metrics | None = None, health: Health | None = None
) -> tuple[Any, ProcessorRuntime]:
    """A configured faust.App with every agent wired, and the runtime state it shares."""
    import faust

    rules = load_rules(settings.attribution_file) if settings.attribution_file else ()
    runtime = ProcessorRuntime(
        settings=settings,
        metrics=metrics or Metrics(),
        book=load_price_book(settings.prices_file),
        rules=rules,
        health=health or Health(),
    )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    app = faust.App(
        # Faust's own consumer reads only its assignor's topic, in a group of its own: the raw
        # topic's consumer group is ``app_id`` (hotpath.py), with the offsets a Faust agent
        # committed there before.
        f"{settings.app_id}-worker",
        broker=[f"kafka://{server.strip()}" for server in settings.bootstrap_servers.split(",")],
        store="memory://",
        autodiscover=False,
        datadir=str(settings.data_dir / settings.app_id),
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        producer_linger=settings.producer_linger_ms / 1000,
        producer_compression_type=(
            None if settings.producer_compression == "none" else settings.producer_compression
        ),
        stream_wait_empty=False,
        # Faust's own group holds no work; a killed worker's seat in it must not hold up the
        # restarted one's startup for Faust's default minute.
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_ms / 3000),
        web_enabled=settings.web_enabled,
        web_port=settings.web_port,
        processing_guarantee="at_least_once",
        broker_credentials=KafkaSecurity.of(settings).faust(),
    )
    wire(app, settings, runtime)
    return app, runtime


def readiness(settings: ProcessorSettings) -> Health:
    """The processor's checks: Kafka answers, partitions assigned, lag within bounds."""
    config = librdkafka_config(settings)

    def kafka() -> str | None:
        found = kafka_problem(config, timeout_s=_PROBE_TIMEOUT_S)
        return None if found is None else found[1]

    health = Health()
    health.add_probe("kafka", kafka)
    health.report("partitions", ok=False, detail="waiting for the prices, then an assignment")
    if settings.ready_max_lag:
        health.report("lag", ok=False, detail="not measured yet")
    return health


def run_worker(settings: ProcessorSettings) -> None:
    """Create the topics, serve metrics and health, and run a worker until stopped (blocks).

    Logging is configured by the caller (``tokenline processor``); Faust leaves it alone.
    """
    import faust

    if settings.create_topics:
        ensure_topics(
            settings.bootstrap_servers,
            topic_specs(settings),
            client_config=librdkafka_config(settings),
        )
    metrics = Metrics()
    health = readiness(settings)
    server = None
    if settings.metrics_port:
        server = HealthServer(health, metrics.registry, settings.metrics_port).start()
        log.info("metrics, /healthz and /readyz on port %d", settings.metrics_port)
    app, _runtime = create_app(settings, metrics, health)
    level = settings.log_level.upper()
    for name in _CHATTY_LOGGERS:  # else they build debug records for every message
        logging.getLogger(name).setLevel(level)
    worker = faust.Worker(app, loglevel=level, quiet=True, override_logging=False)
    worker.spinner = None  # terminal escapes in the log (it spins only when Faust sets logging)
    try:
        worker.execute_from_commandline()
    finally:
        if server is not None:
            server.close()
