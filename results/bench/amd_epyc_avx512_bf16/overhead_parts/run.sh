#!/bin/bash
# The time the package adds to a plain loop, parted into the config's callbacks and Lightning's loop
# (issue 36), as run on 2026-12-07 from the checkout at e636930 (each bench.json names it), a training paused.
# The MLP's step is 3-4 ms: 400 timed steps a repeat instead of the default 40. This script was run whole
# once; its mlp bench warned that the load average (the training paused a few seconds before) was above 3,
# so the first command was run again alone, after 75 s idle: mlp/bench.json is that second run.
set -e
COMMON='--sweep_models [] --repeats 5 --download false --data_dir data'
.venv/bin/python -m benchmarks --models '[mlp]' --steps 400 --warmup 20 $COMMON --out results/bench/amd_epyc_avx512_bf16/overhead_parts/mlp
.venv/bin/python -m benchmarks --models '[cnn,cnn_bn_do]' $COMMON --out results/bench/amd_epyc_avx512_bf16/overhead_parts/cnn_cnn_bn_do
