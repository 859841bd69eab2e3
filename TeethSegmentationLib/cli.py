"""``teethseg`` / ``python -m TeethSegmentationLib``: the engine's command line.

Each subcommand lives in ``commands/<name>.py`` (``add_arguments`` + ``run``). This module owns
what they share: the reporter (JSON events with ``--events``, a progress bar otherwise), logging to
stderr, signals, and the exit codes (0 ok, 1 failure, 2 bad input, 130 cancelled).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import traceback
from typing import Any

from TeethSegmentationLib import __version__
from TeethSegmentationLib.errors import Cancelled, ExitCode, Failed, InputError
from TeethSegmentationLib.events import JsonEventWriter, Reporter, TerminalReporter


class _Parser(argparse.ArgumentParser):
    """argparse that reports usage errors as one sentence and exit code 2, like any bad input."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise InputError(f"{message[0].upper()}{message[1:]} (see '{self.prog} --help').")


def build_parser() -> argparse.ArgumentParser:
    from TeethSegmentationLib.commands import COMMANDS

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--events", action="store_true", help="write JSON lines on stdout (for the Slicer module)")
    common.add_argument("-v", "--verbose", action="store_true", help="more log messages on stderr")
    parser = _Parser(prog="teethseg", description="Find, segment and FDI-number teeth in dental CBCT scans.")
    parser.add_argument("--version", action="version", version=f"teethseg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in COMMANDS:
        p = sub.add_parser(command.NAME, help=command.HELP, description=command.HELP, parents=[common])
        command.add_arguments(p)
        p.set_defaults(run=command.run)
    return parser


def _raise_cancelled(signum: int, frame: Any) -> None:
    raise Cancelled(f"stopped by signal {signal.Signals(signum).name}")


def _one_sentence(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if text.endswith((".", "!", "?")) else text + "."


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("TeethSegmentationLib")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    root.propagate = False


def _is_secondary_rank() -> bool:
    """Under torchrun only rank 0 talks to the user; the other ranks log to stderr."""
    return int(os.environ.get("RANK", "0") or 0) != 0


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _raise_cancelled)  # first: a cancel at any later moment exits 130
    events_wanted = "--events" in (sys.argv[1:] if argv is None else argv)
    writer = JsonEventWriter() if events_wanted and not _is_secondary_rank() else None
    reporter: Reporter = writer or TerminalReporter()
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(args.verbose)
        if writer:
            writer.emit("start", command=args.command, version=__version__)
        result = args.run(args, reporter)
        if writer:
            writer.emit("result", status="ok", **(result or {}))
        return ExitCode.OK
    except InputError as error:
        return _fail(writer, _one_sentence(error), ExitCode.BAD_INPUT)
    except Failed as error:
        return _fail(writer, _one_sentence(error), ExitCode.FAILED)
    except (Cancelled, KeyboardInterrupt):
        return _fail(writer, "Cancelled.", ExitCode.CANCELLED)
    except SystemExit as exit_:  # --help and --version
        return int(exit_.code or 0)
    except Exception as error:  # noqa: BLE001 - the last line of defence: log it, exit 1
        sys.stderr.write(traceback.format_exc())
        return _fail(writer, f"Internal error: {_one_sentence(error)} See the log for details.", ExitCode.FAILED)


def console_main() -> None:
    """The ``teethseg`` command: :func:`main`, then :func:`exit_now`."""
    exit_now(main())


def exit_now(code: int) -> None:
    """End the process with ``code`` once the streams and log handlers are flushed, without the interpreter's
    teardown: torch's alone takes 0.55-0.6 s (``import torch``, then exit, on 2 cores), after every output
    has been written and published. Only the command line ends this way; ``main`` returns as before. Under a
    profiler or tracer (cProfile, coverage) the usual exit stands, so that they can write their results."""
    if sys.getprofile() is not None or sys.gettrace() is not None:
        sys.exit(code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can reach it
            pass
    os._exit(code)


def _fail(writer: JsonEventWriter | None, message: str, code: ExitCode) -> int:
    sys.stderr.write(message + "\n")
    sys.stderr.flush()
    if writer:
        writer.emit("error", message=message, code=int(code))
    return int(code)
