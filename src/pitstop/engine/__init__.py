"""Backend-neutral logic: retrieval, on-demand execution, materialization, push, aggregation.

Every rule (point-in-time, TTL, naming, statuses, event-time ordering) is written here once and
used by every backend.
"""
