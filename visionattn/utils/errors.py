"""Errors caused by user input (a missing file, a malformed row, a bad option).

The command line prints these as one line naming the file, row or key, with no traceback.
"""


class UserError(Exception):
    """A mistake in what the user gave us; the message says what and where."""
