"""The one exception type users see as a one-line message instead of a traceback."""


class CifarBenchError(Exception):
    """A problem with the user's input or environment, phrased as what was wrong and what to do.

    The command-line entry point prints it as a single ``error: ...`` line and exits non-zero.
    """
