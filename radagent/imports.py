"""Import a library without the optional packages it would load eagerly and radagent never uses (issue 17).

nibabel.nifti1 imports pydicom (0.3-0.6 s with its decoders) only to parse NIfTI DICOM header extensions;
pydicom imports requests (~0.13 s) only to download its own test files. ``import_without("nibabel", "pydicom")``
loads nibabel as if pydicom were absent (NIfTI DICOM extensions stay raw bytes); the blocked packages stay
importable afterwards for the code that needs them (the DICOM path imports pydicom itself).
"""

from __future__ import annotations

import importlib
import sys


def import_without(module: str, *blocked: str) -> None:
    """Import MODULE while ``import`` of each BLOCKED package raises ImportError. A no-op when MODULE or any
    BLOCKED package is already imported (the library then keeps the behaviour it was first loaded with)."""
    if module in sys.modules or any(b in sys.modules for b in blocked):
        return
    for b in blocked:
        sys.modules[b] = None  # type: ignore[assignment]  # `import b` raises ImportError meanwhile
    try:
        importlib.import_module(module)
    finally:
        for b in blocked:
            if b in sys.modules and sys.modules[b] is None:
                del sys.modules[b]
