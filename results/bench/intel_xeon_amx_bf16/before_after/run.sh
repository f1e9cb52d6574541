#!/bin/bash
# Issue 36 before and after, back to back on one machine, the same bench (benchmarks/ as of the after commit) on
# the package at e311288 (before: a worktree .wt/before with this benchmarks/ copied in) and at bc148b9 (after).
set -e
COMMON='--models [mlp,cnn,cnn_bn_do,vgg16_last2,vgg16_last3,vgg16_last5] --sweep_models [] --store_images 5000 --repeats 3 --data_dir data --download false'
(cd .wt/before && PYTHONPATH=$PWD ../../.venv/bin/python -m benchmarks $COMMON --data_dir ../../data --feature_store ../../feature_store --out before)
.venv/bin/python -m benchmarks $COMMON --out after
