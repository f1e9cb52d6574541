"""The one exception type users see as a one-line message instead of a traceback, and how an
interrupted command ends."""

import signal
import threading


class CifarBenchError(Exception):
    """A problem with the user's input or environment, phrased as what was wrong and what to do.

    The command-line entry point prints it as a single ``error: ...`` line and exits non-zero.
    """


INTERRUPTED_STATUS = 130
"""The exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it): ``study`` stops on it."""

STUDY_CHILD = "CIFAR_BENCH_STUDY_CHILD"
"""Set in the environment of the commands ``study`` runs, so that an interrupted one leaves the saying to it."""

TERMINATED_STATUS = 128 + 15
"""The exit status of a command stopped by SIGTERM (128 + SIGTERM, as shells report it): ``study`` stops on it."""


class Terminated(Exception):
    """A SIGTERM that came where no training could save its step (starting up, between a study's runs)."""


class SigtermHandler:
    """Whether a fit's ``preemption.SaveOnSigterm`` handles SIGTERM now: Lightning keeps the handler it found
    (``raise_terminated``) in its chain, which must then stay silent."""

    training = False


def raise_on_sigterm() -> None:
    """From now on a SIGTERM raises ``Terminated`` in this process instead of ending it without a word."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_terminated)


def raise_terminated(signum, frame) -> None:
    if not SigtermHandler.training:
        raise Terminated
