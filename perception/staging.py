"""Staging hints from measured findings, each with the rule that fired.

Only what masks can support is assessed: T by size and vessel contact (AJCC 8th edition),
pancreatic resectability (NCCN), kidney T with venous extension. N and M are never invented:
they are always "not assessed". A rule whose vessel masks are missing says so.
"""

from __future__ import annotations

from . import registry
from .schema import ContactCategory, StagingHint, VesselContact

NOT_ASSESSED = "not assessed"

ARTERIES_NCCN = {"superior_mesenteric_artery": "SMA", "celiac_trunk": "celiac trunk", "common_hepatic_artery": "CHA"}
VEINS_NCCN = {"superior_mesenteric_vein": "SMV", "portal_vein": "portal vein", "portal_vein_and_splenic_vein": "portal/splenic vein"}


def _contact(contacts: list[VesselContact], name: str) -> VesselContact | None:
    return next((c for c in contacts if c.vessel == name), None)


def _size_t(size_mm: float, table: list[tuple[float, str]], above: str) -> tuple[str, str]:
    for limit, t in table:
        if size_mm <= limit:
            return t, f"greatest dimension {size_mm:.1f} mm <= {limit:.0f} mm"
    return above, f"greatest dimension {size_mm:.1f} mm > {table[-1][0]:.0f} mm"


def pancreas_hints(size_mm: float, contacts: list[VesselContact], vessels_present: set[str]) -> list[StagingHint]:
    t, why = _size_t(size_mm, registry.PANCREAS_T_MM, "T3")
    art_contacts = [(ARTERIES_NCCN[c.vessel], c) for c in contacts if c.vessel in ARTERIES_NCCN and c.category != ContactCategory.none]
    missing_art = [lbl for v, lbl in ARTERIES_NCCN.items() if v not in vessels_present]
    hints = []
    if art_contacts:
        desc = ", ".join(f"{lbl} {c.category.value} {c.max_angle_deg:.0f} deg" for lbl, c in art_contacts)
        hints.append(StagingHint(system="AJCC8 pancreas T", category="T4", rule=f"tumour contacts {desc} (T4: celiac axis, SMA and/or CHA involvement)"))
    else:
        note = f"; T4 not excluded: no mask for {', '.join(missing_art)}" if missing_art else "; no contact with celiac trunk, SMA, CHA"
        hints.append(StagingHint(system="AJCC8 pancreas T", category=t, rule=f"{t}: {why}{note}"))

    # NCCN resectability
    sma, cel, cha = (_contact(contacts, v) for v in ("superior_mesenteric_artery", "celiac_trunk", "common_hepatic_artery"))
    veins = [(lbl, c) for v, lbl in VEINS_NCCN.items() if (c := _contact(contacts, v)) is not None]
    ivc = _contact(contacts, "inferior_vena_cava")
    reasons_la, reasons_bl = [], []
    for lbl, c in (("SMA", sma), ("celiac trunk", cel)):
        if c and c.category == ContactCategory.encasement:
            reasons_la.append(f"{lbl} encasement {c.max_angle_deg:.0f} deg > 180")
        elif c and c.category == ContactCategory.abutment:
            reasons_bl.append(f"{lbl} abutment {c.max_angle_deg:.0f} deg <= 180")
    if cha and cha.category != ContactCategory.none:
        reasons_bl.append(f"CHA contact {cha.max_angle_deg:.0f} deg")
    for lbl, c in veins:
        if c.category == ContactCategory.encasement:
            reasons_bl.append(f"{lbl} contact {c.max_angle_deg:.0f} deg > 180")
    if ivc and ivc.category != ContactCategory.none:
        reasons_bl.append(f"IVC contact {ivc.max_angle_deg:.0f} deg")
    if reasons_la:
        hints.append(StagingHint(system="NCCN pancreas resectability", category="locally advanced", rule="; ".join(reasons_la + reasons_bl)))
    elif reasons_bl:
        hints.append(StagingHint(system="NCCN pancreas resectability", category="borderline resectable", rule="; ".join(reasons_bl)))
    else:
        missing = [lbl for v, lbl in (("superior_mesenteric_artery", "SMA"), ("celiac_trunk", "celiac trunk"))
                   if v not in vessels_present]
        if not any(v in vessels_present for v in VEINS_NCCN):
            missing.append("SMV/portal vein")
        if missing:
            hints.append(StagingHint(system="NCCN pancreas resectability", category=NOT_ASSESSED,
                                     rule=f"no arterial or venous contact >180 deg among the vessels present, but no mask for {', '.join(missing)}"))
        else:
            vdesc = "; ".join(f"{lbl} {c.category.value} {c.max_angle_deg:.0f} deg" for lbl, c in veins if c.category != ContactCategory.none)
            hints.append(StagingHint(system="NCCN pancreas resectability", category="resectable",
                                     rule="no SMA/celiac/CHA contact; venous contact <= 180 deg" + (f" ({vdesc})" if vdesc else " (none)")))
    return hints


def kidney_hints(size_mm: float, contacts: list[VesselContact], renal_vein_overlap: bool) -> list[StagingHint]:
    t, why = _size_t(size_mm, registry.KIDNEY_T_MM, "T2b")
    ivc = _contact(contacts, "inferior_vena_cava")
    rv = [c for c in contacts if c.vessel.startswith("renal_vein") and c.category == ContactCategory.encasement]
    if ivc and ivc.category == ContactCategory.encasement:
        return [StagingHint(system="AJCC8 kidney T", category="T3b", rule=f"IVC encased {ivc.max_angle_deg:.0f} deg: venous extension suggested (confirm tumour thrombus)")]
    if renal_vein_overlap or rv:
        return [StagingHint(system="AJCC8 kidney T", category="T3a", rule="tumour extends into the renal vein mask: venous extension suggested (confirm)")]
    return [StagingHint(system="AJCC8 kidney T", category=t, rule=f"{t}: {why}, no venous extension seen in the vessel masks present")]


def lesion_hints(organ_family: str | None, kind: str, size_mm: float, contacts: list[VesselContact],
                 vessels_present: set[str], renal_vein_overlap: bool = False) -> list[StagingHint]:
    if organ_family == "pancreas" and kind not in ("cyst",):
        return pancreas_hints(size_mm, contacts, vessels_present)
    if organ_family == "kidney" and kind not in ("cyst",):
        return kidney_hints(size_mm, contacts, renal_vein_overlap)
    what = f"{kind} of the {organ_family}" if organ_family else f"{kind} without a host organ"
    return [StagingHint(system="T", category=NOT_ASSESSED, rule=f"no size-based staging rule applies to a {what}")]


def study_hints() -> list[StagingHint]:
    return [
        StagingHint(system="N", category=NOT_ASSESSED, rule="lymph nodes are not segmented; N is never inferred"),
        StagingHint(system="M", category=NOT_ASSESSED, rule="distant metastases are not assessed from organ masks; M is never inferred"),
    ]
