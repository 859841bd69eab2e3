"""Errors the command line turns into exit codes and one-sentence messages."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # a bug or an unexpected failure: full traceback in the log
    BAD_INPUT = 2  # the user's input is wrong: one sentence says what and what to do
    CANCELLED = 130  # Ctrl-C, SIGTERM or the Slicer Cancel button (128 + SIGINT, as shells do)


class InputError(ValueError):
    """Bad input from the user. The message is one sentence: what is wrong and what to do."""


class Failed(RuntimeError):
    """A run that could not finish for a reason its message states in one sentence (exit 1, no traceback)."""


class Cancelled(Exception):
    """The run was cancelled (SIGINT/SIGTERM or a cancel callback)."""
