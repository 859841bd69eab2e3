"""``python -m TeethSegmentationLib`` is the ``teethseg`` command line.

SIGTERM is caught before anything heavy is imported (torch takes a second): a cancel that comes
that early still ends with exit code 130 and, with ``--events``, an ``error`` event.
"""

import signal
import sys


def _cancel_early(signum, frame):  # noqa: ANN001 - a signal handler
    raise KeyboardInterrupt


def _cancelled_before_start() -> int:
    message = "Cancelled."
    sys.stderr.write(message + "\n")
    if "--events" in sys.argv[1:]:
        import json
        import time

        sys.stdout.write(json.dumps({"event": "error", "time": round(time.time(), 3), "message": message,
                                     "code": 130}) + "\n")
        sys.stdout.flush()
    return 130


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _cancel_early)
    try:
        from TeethSegmentationLib.cli import exit_now, main

        code = main()
    except KeyboardInterrupt:  # before main's own handling began
        sys.exit(_cancelled_before_start())
    exit_now(code)  # without the interpreter's teardown (torch's takes half a second)
