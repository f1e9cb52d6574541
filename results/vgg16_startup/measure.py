"""Median of 3 VGG16Classifier constructions and load_model calls on a saved checkpoint (CPU)."""

import statistics
import tempfile
import time
from pathlib import Path

import pytorch_lightning as pl
import torch
import yaml
from cifar_bench.reports.runs import find_run, load_model

from cifar_bench.models import VGG16Classifier


def timed(fn, repeats=3):
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), times


construct = timed(lambda: VGG16Classifier(trainable_layers=2, weights="none"))
tmp = Path(tempfile.mkdtemp())
model = VGG16Classifier(trainable_layers=2, weights="none")
run = tmp / "vgg16_last2" / "version_0"
(run / "checkpoints").mkdir(parents=True)
torch.save(
    {
        "state_dict": model.state_dict(),
        "hyper_parameters": dict(model.hparams),
        "epoch": 0,
        "global_step": 1,
        "pytorch-lightning_version": pl.__version__,
    },
    run / "checkpoints" / "last.ckpt",
)
(run / "config.yaml").write_text(yaml.safe_dump({"model": {"class_path": "cifar_bench.models.VGG16Classifier"}}))
load = timed(lambda: load_model(find_run(run)))
print(
    f"threads {torch.get_num_threads()}; construct median {construct[0]:.3f} s {['%.3f' % t for t in construct[1]]}; "
    f"load_model median {load[0]:.3f} s {['%.3f' % t for t in load[1]]}"
)
