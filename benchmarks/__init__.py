"""``python -m benchmarks``: how fast the package trains and evaluates, against the study's plain loop.

harness.py times steps and runs the package through its configs, baseline.py is the study's loop,
roofline.py relates both to the machine's matmul peak, measure.py times one model's arms, tables.py
prints the results, command.py holds ``bench`` (its options are the fields of ``BenchSettings``) and
writes ``bench.json``, and __main__.py is the command line. The benchmark is not part of the installed
package: it runs from a checkout. Nothing is imported here, so that ``python -m benchmarks`` sets
THP_MEM_ALLOC_ENABLE before torch is imported, as ``cifar-bench`` does.
"""
