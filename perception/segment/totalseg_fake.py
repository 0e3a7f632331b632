"""Tiny random-weight nnU-Net model folders that TotalSegmentator loads as if they were its weights.

For offline tests of TotalSegmentator's real inference path (preprocessing, nnU-Net sliding window,
export, resampling back, label maps) on machines that cannot download weights. The network is built
by nnU-Net's own machinery (PlansManager -> trainer class -> build_network_architecture) from a
plans.json written here, and saved as ``fold_0/checkpoint_final.pth`` with the keys nnU-Net's
predictor reads (``network_weights``, ``init_args['configuration']``, ``trainer_name``). Predictions
are meaningless; shapes, label ids and names, geometry and the code path are real.

``favour`` biases the last layer towards some labels, so that a random model predicts e.g. the
liver (TotalSegmentator's chained tasks crop around the 6 mm model's liver first and stop on an
empty crop).

nnU-Net reads its results folder once, at import, so the models are written by a child process
(``python -m perception.segment.totalseg_fake``): the calling process stays free to import nnU-Net
later with the right folder. Nothing here imports nnU-Net or torch at module level (nnU-Net's
spawned workers re-import modules).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from .. import registry
from .totalseg import DATASETS
from .trainers import trainer_class

DATASET_TASK = {297: "total", 298: "total", 570: "liver_segments", 8: "liver_vessels", 789: "kidney_cysts",
                913: "lung_nodules", 591: "liver_lesions"}
# label id -> final-layer bias (others get -4): background plus a few organs, so the crop model finds a liver
DEFAULT_FAVOUR = {297: {0: 2.0, 5: 1.5, 1: 0.5, 2: 0.0, 3: 0.0}, 298: {0: 1.0, 5: 2.0, 11: 2.0, 2: 1.0},
                  570: {0: 1.0, 1: 0.0, 2: 0.0, 5: 0.5, 8: 0.5}, 8: {0: 2.0, 1: 0.5, 2: -1.0},
                  789: {0: 2.0, 1: -0.5, 2: -0.5}, 913: {0: 2.0, 1: 1.0, 2: -1.5},
                  591: {0: 1.0, 1: 0.6}}  # liver_lesions: lesion logit close to background's, so lesions are predicted


def plans_for(dataset_id: int, patch_size: Sequence[int], features: Sequence[int]) -> tuple[dict, dict]:
    """(plans.json, dataset.json) of TotalSegmentator dataset ``dataset_id`` (tiny network, its labels and spacing)."""
    d = DATASETS[dataset_id]
    spacing_xyz = d.spacing_mm or (1.5, 1.5, 1.5)
    spacing = [float(spacing_xyz[2]), float(spacing_xyz[1]), float(spacing_xyz[0])]
    return nnunet_plans(d.folder, registry.totalseg_class_maps()[DATASET_TASK[dataset_id]], spacing, d.configuration,
                        patch_size, features)


def nnunet_plans(name: str, labels: Mapping[int, str], spacing: Sequence[float], configuration: str,
                 patch_size: Sequence[int], features: Sequence[int]) -> tuple[dict, dict]:
    """(plans.json, dataset.json) for a tiny PlainConvUNet on one CT channel (nnU-Net axis order z, y, x;
    ``spacing`` z, y, x in mm; ``labels`` id -> name, background added)."""
    n = len(features)
    spacing = [float(v) for v in spacing]
    d_folder = name
    rs = {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    plans = {
        "dataset_name": d_folder, "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": spacing, "original_median_shape_after_transp": list(patch_size),
        "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 3000.0, "mean": 80.0, "median": 70.0, "min": -1024.0, "percentile_00_5": -980.0,
            "percentile_99_5": 1500.0, "std": 250.0}},
        "configurations": {configuration: {
            "data_identifier": f"nnUNetPlans_{configuration}", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
            "patch_size": list(patch_size), "median_image_size_in_voxels": list(patch_size), "spacing": spacing,
            "normalization_schemes": ["CTNormalization"], "use_mask_for_norm": [False],
            "resampling_fn_data": "resample_data_or_seg_to_shape", "resampling_fn_data_kwargs": rs,
            "resampling_fn_seg": "resample_data_or_seg_to_shape", "resampling_fn_seg_kwargs": {**rs, "is_seg": True, "order": 1},
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": {**rs, "order": 1},
            "batch_dice": False,
            "architecture": {
                "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
                "arch_kwargs": {
                    "n_stages": n, "features_per_stage": list(features), "conv_op": "torch.nn.modules.conv.Conv3d",
                    "kernel_sizes": [[3, 3, 3]] * n, "strides": [[1, 1, 1]] + [[2, 2, 2]] * (n - 1),
                    "n_conv_per_stage": [1] * n, "n_conv_per_stage_decoder": [1] * (n - 1), "conv_bias": True,
                    "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d", "norm_op_kwargs": {"eps": 1e-05, "affine": True},
                    "dropout_op": None, "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU",
                    "nonlin_kwargs": {"inplace": True}},
                "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"]},
        }},
    }
    dataset = {"channel_names": {"0": "CT"}, "labels": {"background": 0, **{v: int(k) for k, v in labels.items()}},
               "numTraining": 1, "file_ending": ".nii.gz", "name": d_folder,
               "description": "radagent test model: random weights, NOT a trained TotalSegmentator model"}
    return plans, dataset


def write_model(weights_dir: Path, dataset_id: int, patch_size: Sequence[int] = (32, 64, 64),
                features: Sequence[int] = (4, 8, 16, 32), favour: Mapping[int, float] | None = None, seed: int = 0) -> Path:
    """Write <weights_dir>/<DatasetXXX>/<trainer>__nnUNetPlans__<configuration>/ (this process imports nnU-Net)."""
    d = DATASETS[dataset_id]
    plans, dataset = plans_for(dataset_id, patch_size, features)
    fav = DEFAULT_FAVOUR.get(dataset_id, {0: 2.0}) if favour is None else favour
    return write_results_folder(d.checkpoint(weights_dir).parents[1], plans, dataset, d.trainer, d.configuration, fav, seed)


def write_results_folder(out: Path, plans: dict, dataset: dict, trainer_name: str, configuration: str,
                         favour: Mapping[int, float], seed: int = 0) -> Path:
    """An nnU-Net results folder ``out`` (plans.json, dataset.json, fold_0/checkpoint_final.pth) holding a network
    built by nnU-Net's own trainer class ``trainer_name``, random weights, final-layer bias -4 except ``favour``."""
    import torch
    from nnunetv2.utilities.plans_handling.plans_handler import PlansManager

    pm = PlansManager(plans)
    cm = pm.get_configuration(configuration)
    heads = pm.get_label_manager(dataset).num_segmentation_heads
    trainer = trainer_class(trainer_name)
    torch.manual_seed(seed)
    if "plans_manager" in inspect.signature(trainer.build_network_architecture).parameters:  # nnunetv2 >= 2.6
        net = trainer.build_network_architecture(pm, cm, 1, heads, enable_deep_supervision=False)
    else:
        net = trainer.build_network_architecture(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                                                 cm.network_arch_init_kwargs_req_import, 1, heads, enable_deep_supervision=False)
    with torch.no_grad():
        last = net.decoder.seg_layers[-1]
        last.bias.fill_(-4.0)
        for lab, b in favour.items():
            last.bias[int(lab)] = float(b)
    out = Path(out)
    (out / "fold_0").mkdir(parents=True, exist_ok=True)
    (out / "plans.json").write_text(json.dumps(plans, indent=2))
    (out / "dataset.json").write_text(json.dumps(dataset, indent=2))
    ckpt = {"network_weights": net.state_dict(), "trainer_name": trainer_name, "inference_allowed_mirroring_axes": None,
            "init_args": {"plans": plans, "configuration": configuration, "fold": 0, "dataset_json": dataset,
                          "unpack_dataset": True, "device": "cpu"},
            "current_epoch": 0, "radagent_note": "random weights for offline tests"}
    torch.save(ckpt, out / "fold_0" / "checkpoint_final.pth")
    return out


def make_fake_weights(weights_dir: Path, dataset_ids: Sequence[int], patch_size: Sequence[int] = (32, 64, 64),
                      features: Sequence[int] = (4, 8, 16, 32), timeout_s: float = 300) -> list[Path]:
    """Write the model folders from a child process (keeps nnU-Net's import-time paths out of this one)."""
    weights_dir = Path(weights_dir).resolve()
    weights_dir.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "perception.segment.totalseg_fake", "--weights", str(weights_dir),
           "--patch", *map(str, patch_size), "--features", *map(str, features), "--datasets", *map(str, dataset_ids)]
    env = dict(os.environ, nnUNet_raw=str(weights_dir), nnUNet_preprocessed=str(weights_dir), nnUNet_results=str(weights_dir))
    root = Path(__file__).resolve().parents[2]
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=timeout_s)
    if r.returncode != 0:
        raise RuntimeError(f"making fake TotalSegmentator weights failed ({' '.join(cmd)}):\n{r.stderr[-3000:]}")
    return [weights_dir / DATASETS[i].folder for i in dataset_ids]


def ensure_fake_weights(weights_dir: Path, dataset_ids: Sequence[int], **kwargs) -> list[Path]:
    """make_fake_weights for the datasets whose model folder is not there yet (idempotent)."""
    weights_dir = Path(weights_dir)
    todo = [i for i in dataset_ids if not DATASETS[i].checkpoint(weights_dir).is_file()]
    if todo:
        make_fake_weights(weights_dir, todo, **kwargs)
    return [weights_dir / DATASETS[i].folder for i in dataset_ids]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", required=True, type=Path, help="TotalSegmentator weights folder (TOTALSEG_WEIGHTS_PATH)")
    ap.add_argument("--datasets", nargs="+", type=int, default=[297], choices=sorted(DATASET_TASK))
    ap.add_argument("--patch", nargs=3, type=int, default=[32, 64, 64], help="patch size z y x")
    ap.add_argument("--features", nargs="+", type=int, default=[4, 8, 16, 32])
    a = ap.parse_args(argv)
    for i in a.datasets:
        print(write_model(a.weights, i, a.patch, a.features))


if __name__ == "__main__":
    main()
