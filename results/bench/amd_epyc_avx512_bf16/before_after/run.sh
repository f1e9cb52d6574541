#!/bin/bash
# Issue 36 before and after, back to back on one machine, from the repository's root: one bench (benchmarks/ as of
# bc148b9, which both packages can run) on the package at e311288 (before: a worktree .wt/before with that
# benchmarks/ copied in) and at 1342058 (after: a checkout of it, with bc148b9's benchmarks/ in .wt/bench_bc148b9).
set -e
COMMON='--models [mlp,cnn,cnn_bn_do,vgg16_last2,vgg16_last3,vgg16_last5] --sweep_models [] --store_images 5000 --repeats 3 --download false'
(cd .wt/before && PYTHONPATH=$PWD ../../.venv/bin/python -m benchmarks $COMMON --data_dir ../../data --feature_store ../../feature_store --out before)
(cd .wt/bench_bc148b9 && PYTHONPATH=$PWD:../.. ../../.venv/bin/python -m benchmarks $COMMON --data_dir ../../data --feature_store ../../feature_store --config_dir ../../configs --out after)
