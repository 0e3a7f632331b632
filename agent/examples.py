"""The bundled example case: TotalSegmentator's test CT and its `total` segmentation.

Taken from ``../shared/data/totalseg`` when the repository sits next to the shared data folder,
else downloaded once from TotalSegmentator's public repository (Apache-2.0 code, CC BY 4.0 data)
into ``$RADAGENT_CACHE`` (default ``~/.cache/radagent``) and verified by SHA-256.
"""

from __future__ import annotations

import hashlib
import logging
import os
import urllib.request
from pathlib import Path

from perception.errors import InputError

log = logging.getLogger("radagent")

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared" / "data" / "totalseg"
BASE_URL = "https://github.com/wasserth/TotalSegmentator/raw/master/tests/reference_files/"
FILES = {
    "example_ct_sm.nii.gz": "e50c00b2914e2cac0aaee8e7f3b5f57d44d9f21bfd5c0577271c54c0cb49e9fb",
    "example_seg.nii.gz": "8be652475a4aaae83103a66bfb3345314b1fc06742807a06cf5005f7a7913a2d",
}


def cache_dir() -> Path:
    return Path(os.environ.get("RADAGENT_CACHE", Path.home() / ".cache" / "radagent")) / "examples"


def _sha256(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def example_files() -> dict[str, Path]:
    """name -> local path of the example CT and segmentation (downloading once if needed)."""
    if all((SHARED / n).exists() for n in FILES):
        return {n: SHARED / n for n in FILES}
    out = {}
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    for name, digest in FILES.items():
        p = d / name
        if not p.exists() or _sha256(p) != digest:
            log.warning("downloading %s from %s", name, BASE_URL)
            tmp = p.with_suffix(".part")
            try:
                urllib.request.urlretrieve(BASE_URL + name, tmp)
            except OSError as e:
                raise InputError(f"could not download the example {name} from {BASE_URL} ({e}); "
                                 f"place it in {d} by hand (sha256 {digest})") from e
            got = _sha256(tmp)
            if got != digest:
                tmp.unlink(missing_ok=True)
                raise InputError(f"downloaded {name}: sha256 {got} does not match the expected {digest}")
            tmp.rename(p)
        out[name] = p
    return out
