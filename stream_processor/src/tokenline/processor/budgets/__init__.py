"""Budgets and alerts: spend per budget and period from the priced topic, exactly once.

Pure logic: ``periods`` (a period's bounds in a tenant's timezone), ``model`` (budgets and
whether an event counts for one), ``state`` (spend, crossed thresholds and each counted
event's cost; what a batch changes), ``webhooks`` (payloads and signatures). Kafka: ``codec``
(records and keys), ``evaluator`` (the transactional consumer), ``follow`` (reading the
compacted topics), ``delivery`` (``tokenline alerts``). PostgreSQL: ``store``.
"""
