"""Driving the module's presenter as the widget's timer does: poll until the job's outcome."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from TeethSegmentationLib.presenter import Presenter


def poll_until_done(presenter: Presenter, timeout: float = 120.0, during: Callable | None = None) -> Any:
    """Poll like the widget's timer; ``during(presenter)`` is checked on every tick while the job runs."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = presenter.poll()
        if outcome is not None:
            return outcome
        if during is not None and presenter.busy:
            during(presenter)
        assert time.monotonic() < deadline, "the job did not end in time"
        time.sleep(0.02)
