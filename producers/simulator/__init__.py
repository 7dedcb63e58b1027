"""The reference transactions API: a deterministic, dirty, faulty history with its ground truth."""

from producers.simulator.model import SimulatorConfig
from producers.simulator.server import (
    FaultConfig,
    RunningSimulator,
    Simulator,
    serve,
    start_simulator,
)

__all__ = [
    "FaultConfig",
    "RunningSimulator",
    "Simulator",
    "SimulatorConfig",
    "serve",
    "start_simulator",
]
