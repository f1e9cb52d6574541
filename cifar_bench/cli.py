"""The ``cifar-bench`` command: LightningCLI for fit/validate/test, plus the study's commands.

    cifar-bench --help                      # every command, one line each
    cifar-bench fit --config configs/cnn.yaml --trainer.max_epochs 5
    cifar-bench fit --config cnn            # the packaged config, from any folder
    cifar-bench analyze --data_dir data
    cifar-bench evaluate --ckpt lightning_logs/cnn/version_0/checkpoints/last.ckpt
    cifar-bench predict --ckpt lightning_logs/cnn/version_0 --inputs [cat.png,photos/]
    cifar-bench predict --ckpt lightning_logs/cnn/version_0 cat.png photos/ shots/*.jpg
    cifar-bench compare lightning_logs
    cifar-bench study --seeds [0,1,2] -- --trainer.max_epochs 5
    cifar-bench sweep --model mlp --trials 8
    cifar-bench report results --data_dir data

Every command other than the Trainer's is a plain function whose signature and docstring are its
options and help: jsonargparse's ``auto_cli`` builds its parser, parses and calls it, so a default is
stated once, in the function. Its module is imported only when the command runs, as is Lightning (and
torch): a Ctrl-C during those imports ends as one line, not a traceback. ``run`` is the guard every
command runs under, ``python -m benchmarks`` too.
"""

from __future__ import annotations

import ctypes
import importlib
import inspect
import os
import pickle
import re
import sys
from collections.abc import Callable

from jsonargparse import ArgumentError, ArgumentParser, auto_cli

from cifar_bench.errors import (
    INTERRUPTED_STATUS,
    STUDY_CHILD,
    TERMINATED_STATUS,
    CifarBenchError,
    Terminated,
    first_line,
    hear_every_stop,
    raise_on_sigterm,
)

TRAINER_COMMANDS = {
    "fit": "Train a model from its config (LightningCLI: --config cnn, --trainer.*, --model.*, --data.*).",
    "validate": "A model's metrics on the validation split (LightningCLI, as fit; --ckpt_path the checkpoint).",
    "test": "A model's metrics on the test set (LightningCLI, as fit; --ckpt_path the checkpoint).",
}
# name: (module, function, whether its required parameters are positional: `cifar-bench compare results`)
FUNCTION_COMMANDS = {
    "analyze": ("cifar_bench.evaluation.analyze", "analyze", False),
    "evaluate": ("cifar_bench.evaluation.evaluate", "evaluate", False),
    "predict": ("cifar_bench.evaluation.predict", "predict", False),
    "compare": ("cifar_bench.evaluation.compare", "compare", True),
    "study": ("cifar_bench.study", "study", False),
    "sweep": ("cifar_bench.sweep.command", "sweep", False),
    "report": ("cifar_bench.report.command", "report", True),
}
COMMANDS = (*TRAINER_COMMANDS, *FUNCTION_COMMANDS)
HELP = ("-h", "--help")
# Arguments after "--" go, unparsed, to this parameter of a command that has it (study: to every fit).
PASSTHROUGH = "fit_args"
# A list parameter that also takes the bare words of the command line, as a shell glob expands to them:
# `cifar-bench predict --ckpt RUN cat.png photos/ shots/*.jpg`, as well as `--inputs [cat.png,photos/]`.
BARE_WORDS = "inputs"
BARE_DEST = "bare_words"


def function_of(command: str) -> Callable:
    module, function_name, _ = FUNCTION_COMMANDS[command]
    return getattr(importlib.import_module(module), function_name)


def summary_of(component: Callable) -> str:
    """The first paragraph of a docstring, on one line: a command's description."""
    return " ".join((inspect.getdoc(component) or "").split("\n\n")[0].split())


def call_with_options(component: Callable, words: list[str], prog: str, positional: bool = False):
    """Parse ``component``'s options from the command line's ``words`` and call it (a class: make one)."""
    takes_passthrough = PASSTHROUGH in inspect.signature(component).parameters
    split = words.index("--") if takes_passthrough and "--" in words else len(words)
    passthrough = {PASSTHROUGH: words[split + 1 :]} if split < len(words) else None
    return auto_cli(
        component, words[:split], set_defaults=passthrough, as_positional=positional, return_instance=True,
        parser_class=CommandParser, prog=prog, description=summary_of(component), exit_on_error=False,
    )  # fmt: skip


class CommandParser(ArgumentParser):
    """``auto_cli``'s parser, less an option for the console a caller may pass, and with BARE_WORDS."""

    def add_function_arguments(self, function, *args, **kwargs) -> list[str]:
        added = super().add_function_arguments(function, *args, skip={"console"}, **kwargs)
        if BARE_WORDS in added:
            help_text = f"{BARE_WORDS} as plain words (what a shell glob expands to), added to --{BARE_WORDS}"
            self.add_argument(BARE_DEST, nargs="*", type=str, default=[], metavar=BARE_WORDS.upper(), help=help_text)
        return added

    def parse_args(self, *args, **kwargs):
        options = super().parse_args(*args, **kwargs)
        bare = options.pop(BARE_DEST, None)
        if bare:
            options[BARE_WORDS] = [*(options[BARE_WORDS] or []), *bare]
        return options


def print_commands() -> None:
    """``cifar-bench --help``: every command with its description, one line each."""
    summaries = TRAINER_COMMANDS | {name: summary_of(function_of(name)) for name in FUNCTION_COMMANDS}
    print("usage: cifar-bench COMMAND [options]    (cifar-bench COMMAND --help: its options)\n\ncommands:")
    for name, summary in summaries.items():
        print(f"  {name:<9} {summary}")


def user_error_in(error: BaseException) -> CifarBenchError | None:
    """The CifarBenchError behind an exception, if any: jsonargparse wraps errors raised while it
    instantiates the model or data module in its own ValueError."""
    while error is not None:
        if isinstance(error, CifarBenchError):
            return error
        error = error.__cause__ or error.__context__
    return None


def parser_error_line(error: ArgumentError) -> str:
    """jsonargparse's message on one line, read off the chain of exceptions it raises ``from`` one another.

    Each level that names where the value sits (a parser key, a class path) heads its message with a line
    ending in ':'; the root cause is the reason itself. For a value that fits none of a Union's types the
    chain follows the first type tried, so the line gives one reason, not the list of every alternative.
    """
    chain = [error]
    while chain[-1].__cause__ is not None:
        chain.append(chain[-1].__cause__)
    headers = []
    for link in chain[:-1]:
        lines = message_of(link).strip().splitlines()
        if len(lines) > 1 and lines[0].endswith(":") and lines[0] not in headers:
            headers.append(lines[0])
    return " ".join(" ".join([*headers, message_of(chain[-1])]).split())


def message_of(error: BaseException) -> str:
    """An exception's own message (``str`` of a KeyError would add quotes)."""
    return str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)


def fail(message: str) -> None:
    """One ``error:`` line, without the colour codes or other control characters a message may carry."""
    plain = re.sub(r"[\x00-\x1f\x7f-\x9f]", " ", re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", message))
    print(f"error: {' '.join(plain.split())}", file=sys.stderr)
    sys.exit(2)


# How to go on after a Ctrl-C (or a SIGTERM before training began), for the commands that can.
RESUME_HINTS = {
    "fit": "the same command with --ckpt_path last continues from the last finished epoch",
    "study": "the same command run again continues where it stopped",
    "sweep": "the same command run again resumes the study",
}


def stop(command: str, what: str = "interrupted", status: int = INTERRUPTED_STATUS, hint: str | None = None) -> None:
    """One line for a Ctrl-C or a SIGTERM, saying how to go on where there is a way, and the status shells
    give a command stopped by that signal. A command run by ``study`` stays silent: the study says it once."""
    hint = hint or RESUME_HINTS.get(command)
    if not os.environ.get(STUDY_CHILD):
        print(f"error: {what}" + (f"; {hint}" if hint else ""), file=sys.stderr)
    sys.exit(status)


# glibc's mallopt parameters (malloc.h): the size from which a block is its own mapping, and the free memory kept.
M_MMAP_THRESHOLD, M_TRIM_THRESHOLD = -3, -1


def keep_freed_memory() -> None:
    """Let glibc's malloc keep freed blocks up to 256 MiB for reuse instead of handing each back to the kernel.

    Past its default ceiling (32 MiB) every block is a mapping of its own, which the kernel zeroes page by page
    when it is first touched; a VGG16 step makes its fc7 weight's bf16 copy and fp32 gradient (34 and 67 MB)
    afresh each step, so store-fed steps ran 1.2-1.45x slower (issue 36). Nothing is done without glibc."""
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # no libc.so.6, or one without mallopt (not glibc)
        return
    mallopt(M_MMAP_THRESHOLD, 256 << 20)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)


def run(command: str | None, action: Callable[[], object], usage: str) -> None:
    """Run a command's ``action`` as every command runs: bad input, a Ctrl-C or a SIGTERM end as one
    line and their exit status, not a traceback; ``usage`` is the command line whose --help an error points to."""
    # Large CPU tensors on transparent huge pages: a step that allocates big activations and gradients
    # afresh page-faults far less (VGG16's trained fc layers step about twice as fast on a CPU). PyTorch
    # reads this once, at its first allocation: so here, before torch is imported, and the processes a
    # study starts inherit it. THP_MEM_ALLOC_ENABLE=0 opts out.
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    keep_freed_memory()
    raise_on_sigterm()
    hear_every_stop()
    try:
        action()
    except ArgumentError as error:
        fail(f"{parser_error_line(error)} (see {usage} --help)")
    except KeyboardInterrupt:
        stop(command)
    except Terminated:
        stop(command, "stopped by SIGTERM", TERMINATED_STATUS)
    except SystemExit as exit_:
        if type(exit_).__name__ == "SIGTERMException":  # Lightning's, not imported before Lightning is
            saved_to = getattr(exit_, "saved_to", None)  # where SaveOnSigterm saved the step it stopped at
            if saved_to is None:
                stop(command, "stopped by SIGTERM", TERMINATED_STATUS)
            hint = "the same command with --ckpt_path last continues from that step"
            stop(command, f"stopped by SIGTERM at step {exit_.step}, saved to {saved_to}", TERMINATED_STATUS, hint)
        # Lightning ends its graceful Ctrl-C shutdown with sys.exit(1), raised while handling the KeyboardInterrupt.
        if isinstance(exit_.__context__, KeyboardInterrupt):
            stop(command)
        raise
    except pickle.UnpicklingError as error:
        reason = first_line(error)
        fail(
            f"refused to load a checkpoint holding more than tensors and plain values ({reason}); load only files you trust"
        )
    except Exception as error:
        cause = user_error_in(error)
        if cause is None:
            raise
        fail(str(cause))


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    command = words[0] if words else None
    run(command, lambda: run_command(command, words[1:], argv), f"cifar-bench {command}")


def run_command(command: str | None, options: list[str], argv: list[str] | None) -> None:
    if command not in (*COMMANDS, *HELP):
        what = "no command given" if command is None else f"unknown command {command!r}"
        fail(f"{what}: choose one of {', '.join(COMMANDS)}")
    from cifar_bench.training.lightning_cli import quiet_third_party_noise, run_lightning_cli

    quiet_third_party_noise()
    if command in HELP:
        print_commands()
    elif command in FUNCTION_COMMANDS:
        call_with_options(function_of(command), options, f"cifar-bench {command}", FUNCTION_COMMANDS[command][2])
    else:
        run_lightning_cli(argv)
