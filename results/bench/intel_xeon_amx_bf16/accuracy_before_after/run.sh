#!/bin/bash
# Validation accuracy of store-fed VGG16 before and after issue 36 (README.md). Usage, from the repository at 4019a07:
#   run.sh BEFORE_WORKTREE WEIGHTS SUBSET_DIR SCRATCH
# BEFORE_WORKTREE: a git worktree at e311288; WEIGHTS: vgg16_features_imagenet1k_v1.pth; SUBSET_DIR: the copy that
# `python -m benchmarks --store_images 5000` wrote (store_subset_5000); SCRATCH: a folder for stores, logs and runs.
# Relative paths are taken from the current folder; PYTHON names the interpreter (default: python). A failed fit
# leaves its log and the loop goes on, as when it ran.
set -u
absolute() { (cd "$(dirname "$1")" && echo "$(pwd)/$(basename "$1")"); }
after_root=$(pwd)
before_root=$(cd "$1" && pwd)
weights=$(absolute "$2")
subset=$(cd "$3" && pwd)
mkdir -p "$4" && scratch=$(cd "$4" && pwd)
python=${PYTHON:-python}
[ -f "$weights" ] && [ -n "$before_root" ] && [ -n "$subset" ] && [ -n "$scratch" ] ||
  { echo "run.sh: a worktree, weights file or folder named here does not exist; see the usage above" >&2; exit 2; }
for model in vgg16_last5 vgg16_last2; do for seed in 0 1; do for arm in before after; do
  root=$after_root; [ "$arm" = before ] && root=$before_root
  (cd "$root" && PYTHONPATH="$root" "$python" -m cifar_bench fit --config $model \
    --data.data_dir "$subset" --data.download false --data.val_size 500 --data.seed $seed --seed_everything $seed \
    --trainer.max_epochs 4 --model.init_args.fresh_epochs 0 --model.init_args.weights "$weights" \
    --model.init_args.feature_store "$scratch/acc_store" --trainer.logger.init_args.save_dir "$scratch/acc_logs_$arm" \
    --trainer.logger.init_args.name ${model}_s$seed) > "$scratch/acc_${model}_${arm}_s$seed.log" 2>&1
done; done; done
echo done > "$scratch/acc_done"
