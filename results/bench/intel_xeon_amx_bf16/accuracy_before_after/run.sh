#!/bin/bash
# Validation accuracy of store-fed VGG16 before and after issue 36 (README.md): /work/main/.wt/before was a worktree at
# e311288, /work/main at 4019a07; /tmp/ba/after/store_subset_5000 the copy `python -m benchmarks --store_images 5000` wrote.
cd /work/main
W=/work/shared/weights/vgg16_features_imagenet1k_v1.pth
for model in vgg16_last5 vgg16_last2; do for seed in 0 1; do for arm in before after; do
  root=/work/main; [ $arm = before ] && root=/work/main/.wt/before
  (cd $root && PYTHONPATH=$root /work/main/.venv/bin/python -m cifar_bench fit --config $model \
    --data.data_dir /tmp/ba/after/store_subset_5000 --data.download false --data.val_size 500 --data.seed $seed --seed_everything $seed \
    --trainer.max_epochs 4 --model.init_args.fresh_epochs 0 --model.init_args.weights $W \
    --model.init_args.feature_store /tmp/ba/acc_store --trainer.logger.init_args.save_dir /tmp/ba/acc_logs_$arm \
    --trainer.logger.init_args.name ${model}_s$seed) > /tmp/ba/acc_${model}_${arm}_s$seed.log 2>&1
done; done; done
echo done > /tmp/ba/acc_done
