"""The one error type users see: a single line that names the fix, never a traceback."""


class PaddyError(Exception):
    "Bad input or a missing prerequisite; the CLI prints each line of `str(self)` as one error and exits 2."
