"""The live web dashboard of ``txnpipe run`` and ``txnpipe dashboard`` (docs/dashboard.md)."""

from common.settings import Settings
from txnpipe.dashboard.server import DashboardServer
from txnpipe.dashboard.state import DEFAULT_INTERVAL, DashboardState, build_state

__all__ = ["DEFAULT_INTERVAL", "DashboardServer", "DashboardState", "build_state", "serve"]


def serve(
    settings: Settings, host: str = "127.0.0.1", port: int = 8088,
    interval: float = DEFAULT_INTERVAL,
) -> DashboardServer:  # fmt: skip
    """Bind the port, start the sampler and the server; the caller prints ``.url`` and
    calls ``.stop()``."""
    return DashboardServer(DashboardState(settings, interval=interval), host, port).start()
