"""nnU-Net trainer classes by name, imported from their modules, never by nnU-Net's search.

nnU-Net finds a checkpoint's trainer class by importing every module under
``nnunetv2/training/nnUNetTrainer`` (``recursive_find_python_class``); with nnunetv2 >= 2.6 some of
those modules import timm, and timm imports torchvision, which is not installed beside CPU torch
2.13.0 (PyPI's torchvision 0.28.0 is a CUDA build: ``operator torchvision::nms does not exist``,
measured here). TotalSegmentator consults its own registry (``totalsegmentator.nnunet.custom_trainers``)
before searching, so ``register_totalseg_trainers()`` puts the trainers its tasks use there; then no
search runs (see ../shared/docs/PERCEPTION_NOTES.md). Importing this module imports nothing heavy.
"""

from __future__ import annotations

import importlib

# trainer name -> module that defines it (nnunetv2 2.8.1 / TotalSegmentator 2.18.0)
TRAINER_MODULES = {
    "nnUNetTrainer": "nnunetv2.training.nnUNetTrainer.nnUNetTrainer",
    "nnUNetTrainerNoMirroring": "nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerNoMirroring",
    "nnUNetTrainer_DASegOrd0_NoMirroring": "nnunetv2.training.nnUNetTrainer.variants.data_augmentation.nnUNetTrainerDAOrd0",
    "nnUNetTrainer_4000epochs_NoMirroring":
        "nnunetv2.training.nnUNetTrainer.variants.training_length.nnUNetTrainer_Xepochs_NoMirroring",
    "nnUNetTrainer_MOSAIC_1k_QuarterLR_NoMirroring": "totalsegmentator.custom_trainers",
}


def trainer_class(name: str) -> type:
    """The trainer class ``name`` from its module (KeyError naming the known ones for another name)."""
    if name not in TRAINER_MODULES:
        raise KeyError(f"trainer {name!r}: expected one of {', '.join(TRAINER_MODULES)}")
    return getattr(importlib.import_module(TRAINER_MODULES[name]), name)


def register_totalseg_trainers() -> list[str]:
    """Put every trainer of TRAINER_MODULES into TotalSegmentator's registry (idempotent); returns the names
    added. Call before TotalSegmentator predicts."""
    import totalsegmentator.nnunet as ts_nnunet

    reg = getattr(ts_nnunet, "custom_trainers", None)
    if reg is None:  # an older TotalSegmentator without the registry: nnU-Net's search is used as before
        return []
    added = [n for n in TRAINER_MODULES if n not in reg]
    for n in added:
        reg[n] = trainer_class(n)
    return added


def patch_nnunet_trainer_lookup() -> None:
    """Make nnU-Net's predictor take the trainers of TRAINER_MODULES from their modules (idempotent); other
    trainer names still go through nnU-Net's own search. Used by the nnunet backend (any results folder)."""
    import nnunetv2.inference.predict_from_raw_data as pfr

    name = "recursive_find_trainer_class_by_name"
    original = getattr(pfr, name, None)
    if original is None or getattr(original, "_radagent", False):
        return

    def find(trainer_name: str, *args, **kwargs):
        if trainer_name in TRAINER_MODULES:
            return trainer_class(trainer_name)
        return original(trainer_name, *args, **kwargs)

    find._radagent = True  # type: ignore[attr-defined]
    setattr(pfr, name, find)
