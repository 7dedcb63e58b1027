"""Prometheus plumbing every stage shares: a registry per stage with its labels, and the
``GET /metrics`` endpoint of ``--metrics-port`` (docs/metrics.md).

Each stage defines its own metrics in its package (``producers/metrics.py`` …) on a
``StageMetrics``; every metric carries ``namespace`` and ``stage``, and the stage's own
labels (``outcome``, ``reason``, ``partition`` …) after them. Counters are bumped once per
batch or request, never per record. A *state* (lag, freshness) is a gauge read at scrape
time by a ``StateCollector`` from a function the stage gives, so it is never stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from common.errors import ConfigError

log = logging.getLogger(__name__)
# No ``*_created`` series: Prometheus detects counter resets itself, and they double the output.
disable_created_metrics()  # type: ignore[no-untyped-call]

PREFIX = "txnpipe_"
BASE_LABELS = ("namespace", "stage")
# Batch durations: 1 ms .. 60 s. Batch sizes (records or messages): 1 .. 100k.
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000)
# Latency from publish to applied: 10 ms .. 5 min.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)

StateReader = Callable[[], Iterable[tuple[Sequence[str], float]]]


class Family:
    """A metric with ``namespace`` and ``stage`` bound; children cached by their extra labels."""

    def __init__(self, metric: Any, base: tuple[str, str]) -> None:
        self.metric = metric
        self._base = base
        self._children: dict[tuple[str, ...], Any] = {}

    def of(self, *extra: str) -> Any:
        """The child for the stage's extra label values (created on first use)."""
        child = self._children.get(extra)
        if child is None:
            child = self._children[extra] = self.metric.labels(*self._base, *extra)
        return child

    def inc(self, amount: float = 1, *extra: str) -> None:
        if amount:
            self.of(*extra).inc(amount)

    def observe(self, value: float, *extra: str) -> None:
        self.of(*extra).observe(value)

    def set(self, value: float, *extra: str) -> None:
        self.of(*extra).set(value)


class StateCollector(Collector):
    """One gauge whose samples are read when Prometheus scrapes (lag, freshness, …).

    ``read`` returns (extra label values, value) pairs; a failing read yields no samples
    (and is logged at DEBUG) rather than failing the scrape. ``min_interval`` caps what a
    fast scraper costs: the last reading is reused for that long.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str],
        base: tuple[str, str],
        read: StateReader,
        min_interval: float = 0.0,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = [*BASE_LABELS, *labels]
        self.base = base
        self.read = read
        self.min_interval = min_interval
        self._cache: tuple[float, list[tuple[Sequence[str], float]]] | None = None
        self._lock = threading.Lock()

    def _samples(self) -> list[tuple[Sequence[str], float]]:
        with self._lock:
            now = time.monotonic()
            if self._cache is not None and now - self._cache[0] < self.min_interval:
                return self._cache[1]
            try:
                samples = list(self.read())
            except Exception as exc:
                log.debug("metrics: reading %s failed: %s", self.name, exc)
                samples = []
            self._cache = (now, samples)
            return samples

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(self.name, self.documentation, labels=self.labels)

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(self.name, self.documentation, labels=self.labels)
        for extra, value in self._samples():
            family.add_metric([*self.base, *extra], value)
        yield family


class StageMetrics:
    """The metric set of one stage: a private registry, the stage's labels bound.

    A private registry (not prometheus-client's global one) so that tests can build many
    and each endpoint shows exactly its stage; the process and platform collectors are
    added so ``process_start_time_seconds`` and memory are there too.
    """

    def __init__(self, namespace: str, stage: str, registry: CollectorRegistry | None = None):
        self.namespace = namespace
        self.stage = stage
        self.registry = registry or CollectorRegistry()
        if registry is None:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
        self.base = (namespace, stage)
        self._server: Any = None

    def counter(self, name: str, doc: str, labels: Sequence[str] = ()) -> Family:
        """``txnpipe_<name>_total``: ``name`` without the prefix and the ``_total``."""
        metric = Counter(PREFIX + name, doc, [*BASE_LABELS, *labels], registry=self.registry)
        return Family(metric, self.base)

    def gauge(self, name: str, doc: str, labels: Sequence[str] = ()) -> Family:
        metric = Gauge(PREFIX + name, doc, [*BASE_LABELS, *labels], registry=self.registry)
        return Family(metric, self.base)

    def histogram(
        self, name: str, doc: str, buckets: Sequence[float], labels: Sequence[str] = ()
    ) -> Family:
        metric = Histogram(
            PREFIX + name, doc, [*BASE_LABELS, *labels], buckets=buckets, registry=self.registry
        )
        return Family(metric, self.base)

    def state(
        self,
        name: str,
        doc: str,
        read: StateReader,
        labels: Sequence[str] = (),
        min_interval: float = 0.0,
    ) -> StateCollector:
        """A gauge read at scrape time (``read`` returns (extra label values, value) pairs)."""
        collector = StateCollector(PREFIX + name, doc, labels, self.base, read, min_interval)
        self.registry.register(collector)
        return collector

    def exposition(self) -> bytes:
        """The Prometheus text format, as ``GET /metrics`` serves it."""
        return generate_latest(self.registry)

    def serve(self, port: int, bind: str = "127.0.0.1") -> int:
        """Serve ``GET /metrics`` on ``bind:port`` in a daemon thread (0: off); the port."""
        if port <= 0:
            return 0
        try:
            self._server, _thread = start_http_server(port, addr=bind, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"--metrics-port {port}: cannot listen on {bind}: {exc}") from None
        actual: int = self._server.server_address[1]
        log.info("metrics at http://%s:%d/metrics", bind, actual)
        return actual

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def errors_kind(transient: bool) -> str:
    """The ``kind`` label of an error counter."""
    return "transient" if transient else "permanent"
