"""`teethseg phantom`: not available yet."""

from __future__ import annotations

import argparse
from typing import Any

from TeethSegmentationLib.events import Reporter

NAME = "phantom"
HELP = "phantom (not available yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs="*")


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    raise RuntimeError("'teethseg phantom' is not available yet in this version")
