"""`make demo`: build the example case and run `radagent analyze` on it.

The example is TotalSegmentator's test CT (30 slices, 3 mm) with its `total` segmentation.
Because no public abdominal CT with an expert tumour mask can be bundled, the demo also writes
a copy of that case with three synthetic lesions of known geometry (liver, left kidney,
pancreas), the way the tests do, and analyzes both.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np

from agent.examples import example_files
from eval.synthetic import ellipsoid, organ_center_mm, paint, write_case
from perception.registry import totalseg_class_maps

OUT = Path("demo_out")


def build_synthetic_case(ct_path: Path, seg_path: Path, folder: Path) -> Path:
    img = nib.load(str(ct_path))
    aff = img.affine
    hu = np.asanyarray(img.dataobj).copy()
    seg = np.asanyarray(nib.load(str(seg_path)).dataobj)
    names = totalseg_class_maps()["total"]
    masks = {names[int(l)]: seg == l for l in np.unique(seg) if l}
    liver, kl, panc = masks["liver"], masks["kidney_left"], masks["pancreas"]
    l1 = ellipsoid(hu.shape, aff, organ_center_mm(liver, aff), (18.0, 12.0, 9.0)) & liver
    hu = paint(hu, l1, float(hu[liver & ~l1].mean()) - 40, 8, seed=1)
    k1 = ellipsoid(hu.shape, aff, organ_center_mm(kl, aff), (10.0, 10.0, 9.0)) & kl
    hu = paint(hu, k1, 65, 6, seed=2)
    p1 = ellipsoid(hu.shape, aff, organ_center_mm(panc, aff), (6.0, 6.0, 6.0)) & panc
    hu = paint(hu, p1, 30, 6, seed=3)
    masks.update(liver_lesion=l1, kidney_lesion=k1, pancreatic_lesion=p1)
    return write_case(folder, hu, aff, masks)


def analyze(ct: Path, masks: Path, out: Path) -> None:
    cmd = [sys.executable, "-m", "agent.cli", "analyze", str(ct), "--masks", str(masks), "-o", str(out), "--force", "--report"]
    print("$ radagent " + " ".join(cmd[3:]), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    files = example_files()
    ct, seg = files["example_ct_sm.nii.gz"], files["example_seg.nii.gz"]
    analyze(ct, seg, OUT / "example")
    case = build_synthetic_case(ct, seg, OUT / "cases" / "example_synthetic_lesions")
    analyze(case / "ct.nii.gz", case, OUT / "example_synthetic_lesions")
    print(f"\noutputs:\n  {OUT / 'example' / 'findings.md'}\n  {OUT / 'example_synthetic_lesions' / 'findings.md'}"
          f"\n  {OUT / 'example_synthetic_lesions' / 'report.html'} (key images inside)"
          f"\n  (findings.json, report.md and report.json next to each)")


if __name__ == "__main__":
    main()
