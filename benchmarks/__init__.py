"""``cifar-bench bench``: how fast the package trains and evaluates, against the study's plain loop.

harness.py times steps and runs the package through its configs, baseline.py is the study's loop,
roofline.py relates both to the machine's matmul peak, measure.py times one model's arms, tables.py
prints the results and command.py holds the command (its options are the fields of ``BenchSettings``) and writes
``bench.json``. Nothing here imports cifar_bench.cli, which only dispatches to ``bench``.
"""

from benchmarks.command import BenchSettings, bench

__all__ = ["BenchSettings", "bench"]
