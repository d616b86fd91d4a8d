"""The one error of bad input (:class:`InputError`): every problem found, in one message.

``brainpad`` prints it as it is, without a traceback, and exits with status 2.
"""

from __future__ import annotations

from collections.abc import Sequence

MAX_LISTED_PROBLEMS = 25


class InputError(ValueError):
    """Bad input data; the message says what is wrong, where, and how to fix it.

    ``problems`` holds the message's problems one per line (one, the message itself,
    unless it lists several), for a caller that gathers problems from many files.
    """

    def __init__(self, message: str, problems: Sequence[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems) if problems is not None else [message]


def raise_problems(problems: Sequence[str], context: str) -> None:
    """Raise one InputError listing ``problems`` (at most MAX_LISTED_PROBLEMS)."""
    shown = list(problems[:MAX_LISTED_PROBLEMS])
    if len(problems) > len(shown):
        shown.append(f"... and {len(problems) - len(shown)} more problems of the same kinds")
    msg = f"{context}: {len(problems)} problem(s) found, nothing was written\n  - " + "\n  - ".join(
        shown
    )
    raise InputError(msg, problems)
