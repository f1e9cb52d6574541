"""The one exception type users see as a one-line message instead of a traceback, and how an
interrupted command ends."""

import signal
import sys
import threading


class CifarBenchError(Exception):
    """A problem with the user's input or environment, phrased as what was wrong and what to do.

    The command-line entry point prints it as a single ``error: ...`` line and exits non-zero.
    """


def first_line(error: BaseException) -> str:
    """An error's message cut to its first line, for a one-line error; its type's name when it has none."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__


INTERRUPTED_STATUS = 130
"""The exit status of a command stopped by Ctrl-C (128 + SIGINT, as shells report it): ``study`` stops on it."""

STUDY_CHILD = "CIFAR_BENCH_STUDY_CHILD"
"""Set in the environment of the commands ``study`` runs, so that an interrupted one leaves the saying to it."""

TERMINATED_STATUS = 128 + 15
"""The exit status of a command stopped by SIGTERM (128 + SIGTERM, as shells report it): ``study`` stops on it."""


class Terminated(Exception):
    """A SIGTERM that came where no training could save its step (starting up, between a study's runs)."""


STOP_SIGNALS = {KeyboardInterrupt: signal.SIGINT, Terminated: signal.SIGTERM}
"""The exceptions that stop a command, and the signal that raises each (``raise_on_sigterm``)."""


class SigtermHandler:
    """Whether a fit's ``preemption.SaveOnSigterm`` handles SIGTERM now: Lightning keeps the handler it found
    (``raise_terminated``) in its chain, which must then stay silent."""

    training = False


def raise_on_sigterm() -> None:
    """From now on a SIGTERM raises ``Terminated`` in this process instead of ending it without a word."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, raise_terminated)


def hear_every_stop() -> None:
    """From now on a Ctrl-C or SIGTERM that lands in a weakref callback or a ``__del__`` stops the command too.

    Python cannot raise there: it prints the KeyboardInterrupt (or ``Terminated``) as "Exception ignored",
    traceback and all, and runs on (a study's training then trained to its last epoch). Such a one is
    sent again 50 ms later, as the same signal from another thread, when the main thread is most
    likely back in its own code; one lost again is passed on again. Any other unraisable exception is
    printed as before."""
    print_unraisable = sys.unraisablehook
    if getattr(print_unraisable, "passes_on_stops", False):
        return  # installed already (commands run in one process, as the tests do)

    def pass_on_a_lost_stop(unraisable) -> None:
        lost = unraisable.exc_type or type(None)
        signals = [signum for stop, signum in STOP_SIGNALS.items() if issubclass(lost, stop)]
        if not signals:
            print_unraisable(unraisable)
            return
        main_thread = threading.main_thread().ident  # a real signal: it also breaks a wait on a child process
        again = threading.Timer(0.05, signal.pthread_kill, args=(main_thread, signals[0]))
        again.daemon = True  # a command that ends meanwhile does not wait for it
        again.start()

    pass_on_a_lost_stop.passes_on_stops = True
    sys.unraisablehook = pass_on_a_lost_stop


def raise_terminated(signum, frame) -> None:
    if not SigtermHandler.training:
        raise Terminated
