"""The one exception type users see as a one-line message instead of a traceback, and how an
interrupted command ends."""


class CifarBenchError(Exception):
    """A problem with the user's input or environment, phrased as what was wrong and what to do.

    The command-line entry point prints it as a single ``error: ...`` line and exits non-zero.
    """


INTERRUPTED_STATUS = 130
"""The exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it): ``study`` stops on it."""

STUDY_CHILD = "CIFAR_BENCH_STUDY_CHILD"
"""Set in the environment of the commands ``study`` runs, so that an interrupted one leaves the saying to it."""
