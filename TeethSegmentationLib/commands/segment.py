"""`teethseg segment`: not available yet."""

from __future__ import annotations

import argparse
from typing import Any

from TeethSegmentationLib.events import Reporter

NAME = "segment"
HELP = "segment (not available yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs="*")


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    raise RuntimeError("'teethseg segment' is not available yet in this version")
