"""Handlers of the vessel subtypes: involvement (yes/no), contact category, maximal contact angle,
contact length, and the involved vessels of a lesion, read from ``Lesion.vessel_contacts``.

Which vessels were assessed: perception measures contact with every vessel mask whose box lies
near the lesion (``Lesion.vessel_contacts``, category none included). A vessel mask present in the
study but absent from that list lies farther from the lesion than the search reach: no contact. A
vessel without a mask in the study was not assessed: its contact cannot be determined."""

from __future__ import annotations

from perception.schema import ContactCategory, Findings, Lesion, VesselContact
from reasoning.vqa.lookup import _pick, _which
from reasoning.vqa.question import Question
from reasoning.vqa.result import _Cannot, _fmt, _Result
from reasoning.vqa.vocabulary import vessel_display

# vessels that only a combined mask may hold (TotalSegmentator's portal_vein_and_splenic_vein)
_PARTS = {"portal_vein": "portal_vein_and_splenic_vein", "splenic_vein": "portal_vein_and_splenic_vein"}
_RULE = "vessel_contacts (max circumferential contact angle: abutment 0-180 deg, encasement > 180 deg)"


def _vessel_masks(f: Findings) -> set[str]:
    """Vessel masks of the study that hold voxels."""
    return {m.name for m in f.masks if m.category == "vessel" and m.voxel_count > 0}


def _contact(f: Findings, q: Question, what: str) -> tuple[Lesion, VesselContact | None]:
    """The lesion and its contact with ``q.vessel`` (None: the vessel lies beyond the search reach, no contact);
    _Cannot when no vessel is named or the vessel has no mask in this study."""
    if not q.vessel:
        raise _Cannot(f"{what} needs a vessel (e.g. aorta, superior_mesenteric_artery)")
    l = _pick(f, q, q.organ)
    vc = next((c for c in l.vessel_contacts if c.vessel == q.vessel), None)
    if vc is not None:
        return l, vc
    if q.vessel in _vessel_masks(f):
        return l, None
    whole = _PARTS.get(q.vessel)
    if whole is not None and whole in _vessel_masks(f):
        wc = next((c for c in l.vessel_contacts if c.vessel == whole), None)
        if wc is None or wc.category.value == "none":  # no contact with the combined mask: none with its part either
            return l, VesselContact(vessel=q.vessel, max_angle_deg=0.0, contact_length_mm=0.0, category=wc.category if wc else
                                    ContactCategory.none, slice_of_max=None,
                                    method=f"no {q.vessel} mask; the {whole} mask it belongs to has no contact with {l.id}")
        raise _Cannot(f"no {q.vessel} mask in this study: {l.id} contacts the combined {vessel_display(whole)} mask "
                      f"({wc.category.value}, {_fmt(wc.max_angle_deg, 0)} deg), which part of it cannot be told", [l.id], _RULE)
    assessed = ", ".join(vessel_display(c.vessel) for c in l.vessel_contacts) or "none"
    raise _Cannot(f"the {vessel_display(q.vessel)} was not assessed: no {q.vessel} mask in this study (vessels assessed for {l.id}: "
                  f"{assessed})", [l.id], _RULE)


def _far(l: Lesion, v: str) -> str:
    return f"the {vessel_display(v)} mask lies beyond the contact search reach of {l.id}: no contact"


def _h_vessel_involvement(f: Findings, q: Question) -> _Result:
    if q.vessel:
        l, vc = _contact(f, q, "vessel involvement")
        if vc is None:
            return _Result("no", None, [l.id], _RULE, _far(l, q.vessel))
        pos = vc.category.value != "none"
        return _Result("yes" if pos else "no", None, [l.id], _RULE,
                       f"{l.id} ({_which(q)}) and the {vessel_display(vc.vessel)}: {vc.category.value}"
                       + (f", max {_fmt(vc.max_angle_deg, 0)} deg over {_fmt(vc.contact_length_mm, 1)} mm" if pos else ""))
    l = _pick(f, q, q.organ)
    if not l.vessel_contacts:
        raise _Cannot(f"no vessel was assessed for {l.id}: no vessel mask near it in this study", [l.id], _RULE)
    hit = [c for c in l.vessel_contacts if c.category.value != "none"]
    listing = ", ".join(f"{vessel_display(c.vessel)} {c.category.value}" for c in l.vessel_contacts)
    return _Result("yes" if hit else "no", None, [l.id], _RULE,
                   f"{l.id} ({_which(q)}), vessels assessed: {listing}"
                   + ("" if hit else " (vessels without a mask in this study are not assessed)"))


def _h_vessel_category(f: Findings, q: Question) -> _Result:
    l, vc = _contact(f, q, "vessel contact category")
    if vc is None:
        return _Result("none", None, [l.id], _RULE, _far(l, q.vessel), accept={"none", "no contact"})
    return _Result(vc.category.value, None, [l.id], _RULE,
                   f"{l.id} ({_which(q)}) contacts {_fmt(vc.max_angle_deg, 0)} deg of the {vessel_display(vc.vessel)} circumference: "
                   f"{vc.category.value} ({vc.method})")


def _h_vessel_angle(f: Findings, q: Question) -> _Result:
    l, vc = _contact(f, q, "vessel contact angle")
    if vc is None:
        return _Result(0.0, "deg", [l.id], _RULE, _far(l, q.vessel))
    return _Result(vc.max_angle_deg, "deg", [l.id], _RULE,
                   f"{l.id} ({_which(q)}): max contact {_fmt(vc.max_angle_deg, 0)} deg of the {vessel_display(vc.vessel)} "
                   f"circumference ({vc.category.value}; {vc.method})")


def _h_vessel_length(f: Findings, q: Question) -> _Result:
    l, vc = _contact(f, q, "vessel contact length")
    if vc is None:
        return _Result(0.0, "mm", [l.id], _RULE, _far(l, q.vessel))
    return _Result(vc.contact_length_mm, "mm", [l.id], _RULE,
                   f"{l.id} ({_which(q)}) contacts the {vessel_display(vc.vessel)} over {_fmt(vc.contact_length_mm, 1)} mm "
                   f"(sections with contact x section step; {vc.method})")


def _h_involved_vessels(f: Findings, q: Question) -> _Result:
    l = _pick(f, q, q.organ)
    if not l.vessel_contacts:
        raise _Cannot(f"no vessel was assessed for {l.id}: no vessel mask near it in this study", [l.id], _RULE)
    hit = [c for c in l.vessel_contacts if c.category.value != "none"]
    assessed = ", ".join(vessel_display(c.vessel) for c in l.vessel_contacts)
    if not hit:
        return _Result("none", None, [l.id], _RULE, f"{l.id} ({_which(q)}) contacts none of the vessels assessed ({assessed})",
                       accept={"none"})
    value = ", ".join(c.vessel for c in hit)
    return _Result(value, None, [l.id], _RULE,
                   f"{l.id} ({_which(q)}) contacts " + "; ".join(
                       f"the {vessel_display(c.vessel)} ({c.category.value}, {_fmt(c.max_angle_deg, 0)} deg)" for c in hit)
                   + f" (assessed: {assessed})", accept={c.vessel for c in hit} | {vessel_display(c.vessel) for c in hit})
