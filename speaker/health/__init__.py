"""The health checker: verdicts per (service, backend) for the reconciler.

    checker = HealthChecker(config, wake)      # a speaker.seams.HealthSource
    # in the supervisor's TaskGroup: tg.create_task(checker.run())
    checker.snapshot()[("web", "192.0.2.11:80")].up
"""

from speaker.health.engine import HealthChecker
from speaker.health.hysteresis import BackendState
from speaker.health.outcome import Outcome
from speaker.health.targets import Target, Timers, targets_from_config

__all__ = ["BackendState", "HealthChecker", "Outcome", "Target", "Timers",
           "targets_from_config"]
