"""`teethseg train`: not available yet."""

from __future__ import annotations

import argparse
from typing import Any

from TeethSegmentationLib.events import Reporter

NAME = "train"
HELP = "train (not available yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs="*")


def run(args: argparse.Namespace, reporter: Reporter) -> dict[str, Any]:
    raise RuntimeError("'teethseg train' is not available yet in this version")
