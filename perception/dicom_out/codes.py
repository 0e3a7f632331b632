"""Coded concepts for the DICOM and FHIR outputs, looked up in pydicom's code dictionaries (DICOM PS3.16).

Structure names (perception.registry) are turned into SNOMED CT codes by name: ``kidney_left`` ->
``codes.SCT.Kidney`` with laterality ``codes.SCT.Left``. A name pydicom's dictionary does not hold
gets no code (callers fall back to text); no code is invented.
"""

from __future__ import annotations

import hashlib

from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code

LATERALITY = {"left": codes.SCT.Left, "right": codes.SCT.Right}

# lesion kind (registry.Structure.lesion_kind) -> SNOMED CT morphologically abnormal structure
LESION_KIND_CODES: dict[str, Code] = {
    "lesion": codes.SCT.Lesion, "tumor": codes.SCT.Neoplasm, "cyst": codes.SCT.Cyst,
    "nodule": codes.SCT.Nodule, "mass": codes.SCT.Mass, "pdac": codes.SCT.Neoplasm, "pnet": codes.SCT.Neoplasm,
}

# measurement concepts (SNOMED CT / DCM) and UCUM units
LONG_AXIS = codes.SCT.LongAxis            # 103339001
SHORT_AXIS = codes.SCT.ShortAxis          # 103340004
VOLUME = codes.SCT.Volume                 # 118565006
MEAN = codes.SCT.Mean                     # 373098007 (derivation of the attenuation)
ATTENUATION = codes.DCM.AttenuationCoefficient  # 112031
MM = codes.UCUM.Millimeter
ML = Code("ml", "UCUM", "milliliter")     # UCUM "ml" (pydicom's dictionary has no plain milliliter entry)
HU = codes.UCUM.HounsfieldUnit            # [hnsf'U]
YES, NO = codes.SCT.Yes, codes.SCT.No

# radagent's own concepts where no standard code exists (a private "99" coding scheme, PS3.16 8.2)
PRIVATE_SCHEME = "99RADAGENT"


def private(value: str, meaning: str) -> Code:
    return Code(value, PRIVATE_SCHEME, meaning)


AT_SCAN_EDGE = private("scan-edge", "Reaches the scan edge")
ATTENUATION_CLASS = private("attenuation", "Attenuation relative to the host organ")
VESSEL_CONTACT = private("vessel-contact", "Vessel contact")
STAGING_HINT = private("staging-hint", "Staging hint")
SIZE_QUALIFIER = private("size-qualifier", "Size qualifier")


def _camel(words: list[str]) -> str:
    return "".join(w[:1].upper() + w[1:] for w in words)


def structure_code(name: str) -> tuple[Code | None, Code | None]:
    """(SNOMED CT code, laterality code) of a registry structure name, (None, None) when pydicom's
    dictionary has no entry under that name."""
    words = [w for w in name.lower().split("_") if w]
    side = None
    if words and words[-1] in LATERALITY:
        side = LATERALITY[words[-1]]
        words = words[:-1]
    for cand in (_camel(words), _camel(words) + "Structure"):
        try:
            return getattr(codes.SCT, cand), side
        except AttributeError:
            continue
    return None, side


def deterministic_uid(*parts: str) -> str:
    """A UID under 2.25 (ISO/IEC 9834-8 UUID form) derived from ``parts``: the same parts always give
    the same UID (so a lesion keeps its tracking UID and a re-run writes the same instance UIDs)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()[:16]
    return "2.25." + str(int.from_bytes(digest, "big"))


def tracking_uid(study_uid: str, lesion_id: str) -> str:
    """The tracking UID of lesion ``lesion_id`` in the study ``study_uid`` (stable across runs)."""
    return deterministic_uid("radagent-tracking", study_uid, lesion_id)
