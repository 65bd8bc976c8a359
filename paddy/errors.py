"""The one error type users see: a single line that names the fix, never a traceback."""


class PaddyError(Exception):
    "Bad input or a missing prerequisite; the CLI prints `str(self)` on one line and exits 2."
