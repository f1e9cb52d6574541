#!/bin/bash
# The VGG16 recipe probes behind configs/vgg16_last{2,3,5}.yaml: each config as shipped, with the
# cache on, on 5,000 training and 1,000 validation images for 12 epochs, one run at a time.
# Usage, from anywhere: VGG16_WEIGHTS=/path/vgg16_features_imagenet1k_v1.pth results/recipe_probes/run.sh
# Runs go to lightning_logs/recipe_probes/<name>; curves.json here was read from their event files.
set -euo pipefail
cd "$(dirname "$0")/../.."
weights=${VGG16_WEIGHTS:?set VGG16_WEIGHTS to the VGG16 weights file}
probe() {
  name=$1; model=$2; shift 2
  .venv/bin/cifar-bench fit --config "configs/$model.yaml" --model.weights "$weights" --model.cache_features true \
    --data.train_size 5000 --data.val_size 1000 --data.download false --trainer.max_epochs 12 \
    --trainer.logger.init_args.save_dir lightning_logs/recipe_probes --trainer.logger.init_args.name "$name" \
    --trainer.enable_progress_bar false "$@"
}
probe last5_sgd vgg16_last5 --model.pretrained_lr_scale 0.1 --model.warmup_epochs 1
probe last2_sgd vgg16_last2 --model.warmup_epochs 1
probe last3_sgd vgg16_last3 --model.warmup_epochs 1
