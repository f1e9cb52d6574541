#!/bin/bash
# The time the package adds to a plain loop, parted into the config's callbacks and Lightning's loop
# (issue 36), as run on 2026-12-07 from the checkout (the commit is in each bench.json), a training paused.
# The MLP's step is 3-4 ms: 400 timed steps a repeat instead of the default 40.
set -e
COMMON='--sweep_models [] --repeats 5 --download false --data_dir data'
.venv/bin/python -m benchmarks --models '[mlp]' --steps 400 --warmup 20 $COMMON --out results/bench/amd_epyc_avx512_bf16/overhead_parts/mlp
.venv/bin/python -m benchmarks --models '[cnn,cnn_bn_do]' $COMMON --out results/bench/amd_epyc_avx512_bf16/overhead_parts/cnn_cnn_bn_do
