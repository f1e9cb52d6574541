"""``python -m benchmarks``: time the package against the study's plain loop; its options are the
fields of ``BenchSettings``, and the words after ``--`` go to every package run.

    python -m benchmarks --models [cnn] --batch_sizes [64,256,1024] -- --trainer.precision 32-true

It runs as every ``cifar-bench`` command does (``cifar_bench.cli.run``): bad input, a Ctrl-C or a
SIGTERM end as one line, and torch, imported only once the command runs, uses huge pages as there.
"""

from __future__ import annotations

import sys

from cifar_bench.cli import call_with_options, run

PROG = "python -m benchmarks"


def main(argv: list[str] | None = None) -> None:
    words = sys.argv[1:] if argv is None else argv
    run("bench", lambda: bench_with_options(words), PROG)


def bench_with_options(words: list[str]) -> None:
    from benchmarks.command import BenchSettings, bench
    from cifar_bench.training.lightning_cli import quiet_third_party_noise

    quiet_third_party_noise()
    bench(call_with_options(BenchSettings, words, PROG))


if __name__ == "__main__":
    main()
