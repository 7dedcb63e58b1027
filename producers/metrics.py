"""The source stage's metrics: the poller (``stage="poller"``) and the API simulator
(``stage="simulator"``). Counted per page or per request, never per record."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from common.metrics import DURATION_BUCKETS, SIZE_BUCKETS, StageMetrics


class PollerMetrics(StageMetrics):
    """What ``txnpipe poll`` did: records read and published, API requests, retries."""

    def __init__(self, namespace: str, registry: CollectorRegistry | None = None) -> None:
        super().__init__(namespace, "poller", registry)
        self.records = self.counter(
            "poll_records",
            "Records read from the API (outcome=read) and acknowledged by the broker "
            "(outcome=published)",
            ["outcome"],
        )
        self.messages = self.counter(
            "poll_messages_published", "Raw-topic messages acknowledged by the broker"
        )
        self.pages = self.counter("poll_pages", "API pages read and handed to the producer")
        self.sweeps = self.counter("poll_sweeps", "Sweeps of the API started")
        self.page_records = self.histogram(
            "poll_page_records", "Records per API page (the poller's batch)", SIZE_BUCKETS
        )
        self.page_seconds = self.histogram(
            "poll_page_duration_seconds",
            "Time from requesting a page to having it produced",
            DURATION_BUCKETS,
        )
        self.requests = self.counter(
            "api_requests", "Requests to the transactions API by HTTP status", ["status"]
        )
        self.request_seconds = self.histogram(
            "api_request_duration_seconds", "Duration of one API request", DURATION_BUCKETS
        )
        self.retries = self.counter(
            "api_retries", "API requests retried after a transient failure", ["reason"]
        )
        self.checkpoint = self.gauge(
            "poll_checkpoint_timestamp_seconds",
            "The saved poll position (updated_since) as a Unix time",
        )
        self.redis_errors = self.counter(
            "redis_errors",
            "Redis failures (the checkpoint) by kind: transient, permanent",
            ["kind"],
        )
        for outcome in ("read", "published"):
            self.records.of(outcome)


class SimulatorMetrics(StageMetrics):
    """What ``txnpipe simulate-api`` served, and the faults it injected."""

    def __init__(self, namespace: str, registry: CollectorRegistry | None = None) -> None:
        super().__init__(namespace, "simulator", registry)
        self.requests = self.counter(
            "simulator_requests", "HTTP requests served by path and status", ["path", "status"]
        )
        self.faults = self.counter(
            "simulator_faults", "Faults injected by kind (429, 5xx, slow, truncated)", ["kind"]
        )
        self.records = self.counter(
            "simulator_records_served", "Records served in complete /transactions pages"
        )
        self.request_seconds = self.histogram(
            "simulator_request_duration_seconds", "Time to answer one request", DURATION_BUCKETS
        )
