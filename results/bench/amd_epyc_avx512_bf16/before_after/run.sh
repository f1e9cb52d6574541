#!/bin/bash
# Issue 36 before and after, back to back on one machine, as run on 2026-12-07 (REPO: the checkout, at 1342058).
# Before: the package at e311288 in a worktree, REPO/.wt/before, with bc148b9's benchmarks/ copied over its own.
# After: the package in REPO itself, timed by bc148b9's benchmarks/ alone in a folder of its own, BENCH
# (git archive bc148b9 benchmarks | tar -x -C BENCH), so that only `benchmarks` comes from there.
set -e
REPO=${REPO:?the checkout} BENCH=${BENCH:?a folder holding bc148b9 benchmarks/ only}
COMMON='--models [mlp,cnn,cnn_bn_do,vgg16_last2,vgg16_last3,vgg16_last5] --sweep_models [] --store_images 5000 --repeats 3 --download false'
(cd "$REPO/.wt/before" && PYTHONPATH=$PWD ../../.venv/bin/python -m benchmarks $COMMON --data_dir ../../data --feature_store ../../feature_store --out before)
(cd "$BENCH" && PYTHONPATH=$BENCH:$REPO "$REPO/.venv/bin/python" -m benchmarks $COMMON --data_dir "$REPO/data" --feature_store "$REPO/feature_store" --config_dir "$REPO/configs" --out after)
