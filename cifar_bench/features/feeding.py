"""The Trainer-level piece that joins the DataModule's images and a VGG16 model through a feature store.

Neither the model nor the DataModule asks the other for anything: when a fit starts, this callback (listed in
configs/base.yaml; it does nothing for a model without a ``feature_store`` setting) opens the store,
building it from the DataModule's images with the model's frozen layers if it is not there yet, and hands
the model the arrays its training and validation batches read from.
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import rank_zero_info

from cifar_bench.data.augment import AUGMENTATION_VERSION
from cifar_bench.data.sources import CifarArrays
from cifar_bench.errors import CifarBenchError
from cifar_bench.features.store import StoreInputs, StoreKey, open_or_build, tensors_sha256
from cifar_bench.models.networks.vgg16 import STORE_TAP


def stored_arrays(datamodule) -> CifarArrays:
    """The images a fit's store encodes: the test images only where validation reads them (``val_size`` 0), so a
    sweep (which never opens the test batch) and the final runs after it share one store."""
    arrays = datamodule.arrays
    if datamodule.validates_on_test:
        return arrays
    return dataclasses.replace(arrays, test_images=arrays.test_images[:0], test_labels=arrays.test_labels[:0])


def store_key(model, arrays: CifarArrays, precision: str) -> StoreKey:
    """What the store a model needs depends on: its frozen layers, the images, the views and how they are made."""
    hp, profile = model.hparams, model.transform_profile
    frozen_layers = model.net.layers[: model.store_tap_end]
    return StoreKey(
        prefix_sha256=tensors_sha256(t for layer in frozen_layers for t in layer.state_dict().values()),
        train_sha256=tensors_sha256([arrays.train_images]),
        test_sha256=tensors_sha256([arrays.test_images]),
        tap=STORE_TAP,
        views=hp.store_views,
        view_seed=hp.store_seed,
        augmentation=f"v{AUGMENTATION_VERSION} rotation {profile.max_rotation_degrees} mean {profile.mean} std {profile.std}",
        precision=precision,
        dtype=hp.store_dtype,
    )


class FeatureStoreFeeder(pl.Callback):
    """Open or build the model's feature store when a fit starts, and feed the model from it.

    ``store_s`` is the time this fit spent opening or building it (a build: minutes; opening: a moment), and
    ``store_record`` the store it read (its digest, views and build time, whoever built it): the run's
    environment.json records both, so that times are compared with and without a store's build, and runs that
    share one store share its build once."""

    store_s = 0.0
    store_record: dict | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module) -> None:
        if pl_module.hparams.get("feature_store") is None:
            return
        started = time.perf_counter()
        if not isinstance(getattr(trainer.datamodule, "arrays", None), CifarArrays):
            raise CifarBenchError(
                "feature_store needs the images of CIFAR10DataModule: fit with it or drop feature_store"
            )
        arrays = stored_arrays(trainer.datamodule)
        net, tap_end = pl_module.net, pl_module.store_tap_end

        def encode(images: torch.Tensor) -> torch.Tensor:
            with torch.inference_mode(), trainer.precision_plugin.forward_context():
                return net.run(images.to(pl_module.device), 0, tap_end)

        key = store_key(pl_module, arrays, str(trainer.precision))
        feature_shape = tuple(encode(pl_module.prepare_inputs(arrays.train_images[:1])).shape[1:])
        store = open_or_build(
            pl_module.hparams.feature_store,
            key,
            StoreInputs(arrays.train_images, arrays.test_images, pl_module.transform_profile),
            encode,
            feature_shape,
            show_progress=trainer.is_global_zero,
            report=rank_zero_info,
        )
        self.store_s = time.perf_counter() - started
        self.store_record = {"digest": key.digest, "views": key.views, "build_s": store.build_s}
        validation: np.ndarray = store.test_plain if trainer.datamodule.validates_on_test else store.train_plain
        pl_module.use_feature_store({"train": store.train_views, "val": validation})

    def on_fit_end(self, trainer: pl.Trainer, pl_module) -> None:
        if pl_module.hparams.get("feature_store") is not None:
            pl_module.use_feature_store({})
