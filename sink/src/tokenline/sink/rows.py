"""Pure functions that flatten the Avro records into the sink's table rows.

Keys are the column names of :class:`~tokenline.sink.models.UsageEvent` and
:class:`~tokenline.sink.models.UsageRollup1m`; ``ingested_at`` is left to the database.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tokenline.schemas import PricedUsageEvent, UsageRollup

__all__ = ["EVENT_PATHS", "event_row", "rollup_row"]


#: Where each ``usage_events`` column comes from in a PricedUsageEvent (as :func:`event_row`
#: takes it): the path of its field; a field of a null ``cost`` or ``source`` is NULL.
EVENT_PATHS: dict[str, tuple[str, ...]] = {
    "event_id": ("event", "event_id"),
    "occurred_at": ("event", "occurred_at"),
    "tenant_id": ("event", "tenant_id"),
    "project": ("event", "project"),
    "user_id": ("event", "user_id"),
    "session_id": ("event", "session_id"),
    "team": ("event", "team"),
    "tags": ("event", "tags"),
    "provider": ("event", "provider"),
    "operation": ("event", "operation"),
    "request_model": ("event", "request_model"),
    "response_model": ("event", "response_model"),
    "canonical_model": ("canonical_model",),
    "deployment": ("event", "deployment"),
    "region": ("event", "region"),
    "batch": ("event", "batch"),
    "input_tokens": ("event", "usage", "input_tokens"),
    "cache_read_input_tokens": ("event", "usage", "cache_read_input_tokens"),
    "cache_write_input_tokens": ("event", "usage", "cache_write_input_tokens"),
    "cache_write_5m_input_tokens": ("event", "usage", "cache_write_5m_input_tokens"),
    "cache_write_1h_input_tokens": ("event", "usage", "cache_write_1h_input_tokens"),
    "output_tokens": ("event", "usage", "output_tokens"),
    "reasoning_tokens": ("event", "usage", "reasoning_tokens"),
    "provider_total_tokens": ("event", "usage", "provider_total_tokens"),
    "usage_mismatch": ("event", "usage", "mismatch"),
    "usage_source": ("event", "usage_source"),
    "streamed": ("event", "streamed"),
    "latency_ms": ("event", "latency_ms"),
    "time_to_first_token_ms": ("event", "time_to_first_token_ms"),
    "success": ("event", "success"),
    "error_type": ("event", "error_type"),
    "error_message": ("event", "error_message"),
    "http_status": ("event", "http_status"),
    "provider_request_id": ("event", "provider_request_id"),
    "hostname": ("event", "host", "hostname"),
    "host_cloud": ("event", "host", "cloud"),
    "host_region": ("event", "host", "region"),
    "host_instance_id": ("event", "host", "instance_id"),
    "host_k8s_pod": ("event", "host", "k8s_pod"),
    "host_k8s_namespace": ("event", "host", "k8s_namespace"),
    "host_k8s_node": ("event", "host", "k8s_node"),
    "host_service_name": ("event", "host", "service_name"),
    "sdk_version": ("event", "host", "sdk_version"),
    "sdk_language": ("event", "host", "language"),
    "producer_id": ("event", "producer_id"),
    "producer_seq": ("event", "producer_seq"),
    "pricing_status": ("pricing_status",),
    "unpriced_reason": ("unpriced_reason",),
    "cost_input": ("cost", "input"),
    "cost_cache_read": ("cost", "cache_read"),
    "cost_cache_write": ("cost", "cache_write"),
    "cost_output": ("cost", "output"),
    "cost_reasoning": ("cost", "reasoning"),
    "cost_total": ("cost", "total"),
    "currency": ("currency",),
    "price_entry_id": ("price_entry_id",),
    "pricing_version": ("pricing_version",),
    "priced_at": ("priced_at",),
    "attributed_team": ("team",),
    "attributed_cost_center": ("cost_center",),
    "attributed_cloud": ("cloud",),
    "attributed_cloud_region": ("cloud_region",),
    "attributed_cluster": ("cluster",),
    "attributed_namespace": ("namespace",),
    "attributed_service": ("service",),
    "source_topic": ("source", "topic"),
    "source_partition": ("source", "partition"),
    "source_offset": ("source", "offset"),
}


def event_row(priced: PricedUsageEvent) -> dict[str, Any]:
    """Flatten a priced event into a ``usage_events`` row (costs NULL when unpriced).

    ``source_*`` is the raw record the event was priced from, so a replay can be traced back.
    """
    event, usage, host = priced["event"], priced["event"]["usage"], priced["event"]["host"]
    cost, source = priced["cost"], priced["source"]
    return {
        "event_id": event["event_id"],
        "occurred_at": event["occurred_at"],
        "tenant_id": event["tenant_id"],
        "project": event["project"],
        "user_id": event["user_id"],
        "session_id": event["session_id"],
        "team": event["team"],
        "tags": dict(event["tags"]),
        "provider": event["provider"],
        "operation": event["operation"],
        "request_model": event["request_model"],
        "response_model": event["response_model"],
        "canonical_model": priced["canonical_model"],
        "deployment": event["deployment"],
        "region": event["region"],
        "batch": event["batch"],
        "input_tokens": usage["input_tokens"],
        "cache_read_input_tokens": usage["cache_read_input_tokens"],
        "cache_write_input_tokens": usage["cache_write_input_tokens"],
        "cache_write_5m_input_tokens": usage["cache_write_5m_input_tokens"],
        "cache_write_1h_input_tokens": usage["cache_write_1h_input_tokens"],
        "output_tokens": usage["output_tokens"],
        "reasoning_tokens": usage["reasoning_tokens"],
        "provider_total_tokens": usage["provider_total_tokens"],
        "usage_mismatch": usage["mismatch"],
        "usage_source": event["usage_source"],
        "streamed": event["streamed"],
        "latency_ms": event["latency_ms"],
        "time_to_first_token_ms": event["time_to_first_token_ms"],
        "success": event["success"],
        "error_type": event["error_type"],
        "error_message": event["error_message"],
        "http_status": event["http_status"],
        "provider_request_id": event["provider_request_id"],
        "hostname": host["hostname"],
        "host_cloud": host["cloud"],
        "host_region": host["region"],
        "host_instance_id": host["instance_id"],
        "host_k8s_pod": host["k8s_pod"],
        "host_k8s_namespace": host["k8s_namespace"],
        "host_k8s_node": host["k8s_node"],
        "host_service_name": host["service_name"],
        "sdk_version": host["sdk_version"],
        "sdk_language": host["language"],
        "producer_id": event["producer_id"],
        "producer_seq": event["producer_seq"],
        "pricing_status": priced["pricing_status"],
        "unpriced_reason": priced["unpriced_reason"],
        "cost_input": None if cost is None else cost["input"],
        "cost_cache_read": None if cost is None else cost["cache_read"],
        "cost_cache_write": None if cost is None else cost["cache_write"],
        "cost_output": None if cost is None else cost["output"],
        "cost_reasoning": None if cost is None else cost["reasoning"],
        "cost_total": None if cost is None else cost["total"],
        "currency": priced["currency"],
        "price_entry_id": priced["price_entry_id"],
        "pricing_version": priced["pricing_version"],
        "priced_at": priced["priced_at"],
        "attributed_team": priced["team"],
        "attributed_cost_center": priced["cost_center"],
        "attributed_cloud": priced["cloud"],
        "attributed_cloud_region": priced["cloud_region"],
        "attributed_cluster": priced["cluster"],
        "attributed_namespace": priced["namespace"],
        "attributed_service": priced["service"],
        "source_topic": None if source is None else source["topic"],
        "source_partition": None if source is None else source["partition"],
        "source_offset": None if source is None else source["offset"],
    }


def rollup_row(rollup: UsageRollup) -> dict[str, Any]:
    """Return a ``usage_rollup_1m`` row: the rollup's fields are the table's columns."""
    return dict(rollup)
