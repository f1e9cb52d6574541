"""``cifar-bench bench``: how fast the package trains and evaluates, against the study's plain loop.

harness.py times steps and runs the package through its configs, baseline.py is the study's loop,
roofline.py relates both to the machine's matmul peak, measure.py times one model's arms, tables.py
prints the results and command.py parses the options and writes ``bench.json``. Nothing here imports
cifar_bench.cli, which only dispatches to ``main``.
"""

from cifar_bench.bench.command import bench, main, parser

__all__ = ["bench", "main", "parser"]
