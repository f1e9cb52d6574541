"""The two profiles behind docs/performance.md's overhead paragraphs, from a checkout with the bench's own
helpers: cProfile of a package mlp fit with the step timer alone (600 steps), and torch.profiler over the cnn's
plain loop (33 steps, after a short package fit, which the plain loop needs).

Run from the checkout: THP_MEM_ALLOC_ENABLE=1 PYTHONPATH=. .venv/bin/python <this file> > profile_steps.txt
(run at 2f0323e, the training paused; the output's file paths were then cut to their place in site-packages,
the Python library or the checkout).
"""

import cProfile
import io
import pstats

from torch.profiler import ProfilerActivity, profile

from benchmarks.harness import package_cli, package_train, plain_fast_loop

DATA = ["--data.data_dir", "data", "--data.download", "false"]

mlp = package_cli("mlp", "configs", DATA)
package_train(mlp, 50, 10, with_callbacks=False)
profiler = cProfile.Profile()
profiler.enable()
package_train(mlp, 590, 10, with_callbacks=False)
profiler.disable()
text = io.StringIO()
pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(30)
print("mlp, package fit with the step timer alone, 600 steps (cProfile)", text.getvalue(), sep="\n")

cnn = package_cli("cnn", "configs", DATA)
package_train(cnn, 5, 3)
print("cnn plain loop, unprofiled: s a step", plain_fast_loop(cnn, 20, 5))
with profile(activities=[ProfilerActivity.CPU]) as steps:
    print("cnn plain loop, profiled: s a step", plain_fast_loop(cnn, 30, 3))
print(steps.key_averages().table(sort_by="self_cpu_time_total", row_limit=30, max_name_column_width=45))
