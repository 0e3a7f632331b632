"""ReportDraft: report sentences with the finding ids they rest on, and the template narrative.

The template engine writes every sentence from Findings with fixed rounding (mm and HU to 0.1,
mL to 0.01, degrees to 1), so it always passes the grounding validator. The LLM engine
(reasoning.narrative) produces the same ReportDraft shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from perception.registry import organ_family
from perception.schema import Findings, Lesion, Organ

from .facts import counts, couinaud, organ_id, total_volume_ml, vessel_display
from .limitations import (human, ignored_hint, implausible, is_lower_bound, kinds_phrase, limitation_texts, size_phrase,
                          slice_phrase, volume_phrase)

Section = Literal["technique", "findings", "impression", "limitations"]
GROUPS = ["liver", "gallbladder", "pancreas", "spleen", "adrenals", "kidneys", "lungs", "vessels", "other"]
GROUP_TITLES = {"liver": "Liver", "gallbladder": "Gallbladder", "pancreas": "Pancreas", "spleen": "Spleen",
                "adrenals": "Adrenal glands", "kidneys": "Kidneys", "lungs": "Lungs", "vessels": "Vessels", "other": "Other"}
# organ groups whose absence from the masks the report states ("not assessed")
ABDOMINAL = ("liver", "gallbladder", "pancreas", "spleen", "adrenals", "kidneys")
GROUP_FAMILY = {"adrenals": "adrenal", "kidneys": "kidney", "lungs": "lung"}


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sentence(_Model):
    section: Section
    group: str = Field(description="organ group within FINDINGS (liver, pancreas, ..., vessels, other); '' elsewhere")
    text: str
    finding_ids: list[str]


class ReportDraft(_Model):
    engine: Literal["llm", "template"]
    model: str | None = None
    style: str = "structured"
    attempts: int = 0
    validation_errors: list[list[str]] = Field(default_factory=list, description="errors seen, per LLM attempt")
    fallback_reason: str | None = None
    sentences: list[Sentence]
    seconds: float | None = None


def organ_group(name: str | None) -> str:
    fam = organ_family(name) if name else None
    return {"adrenal": "adrenals", "kidney": "kidneys", "lung": "lungs"}.get(fam, fam) if fam in (
        "liver", "gallbladder", "pancreas", "spleen", "adrenal", "kidney", "lung") else "other"


_human = human


def _location(les: Lesion) -> str:
    org = _human(les.organ) if les.organ else "no host organ"
    if les.segments:
        if les.segments[0].startswith("liver_segment_"):
            segs = [couinaud(s) for s in les.segments]
            return f"in segment{'s' if len(segs) > 1 else ''} {' and '.join(segs)} of the liver"
        if les.segments[0].startswith("pancreas_"):
            return "in the " + " and ".join(f"pancreatic {s.split('_')[1]}" for s in les.segments)
        if les.segments[0].startswith("lung_"):
            return "in the " + " and ".join(_human(s) for s in les.segments)
    if les.organ and organ_family(les.organ) == "lung":
        side = les.laterality if les.laterality in ("left", "right") else (
            les.organ.rsplit("_", 1)[1] if les.organ.endswith(("_left", "_right")) else None)
        return f"in the {side} lung" if side else "in the lung (lobe not determined)"
    if les.kidney_pole:
        return f"in the {les.kidney_pole} pole of the {org}" if les.kidney_pole != "interpolar" else f"in the interpolar {org}"
    return f"in the {org}" if les.organ else "without a host organ mask"


_NODULE_TYPES = {"solid": "solid", "part_solid": "part-solid", "ground_glass": "ground-glass"}


def _kind(les: Lesion) -> str:
    if les.nodule_type:
        return f"{_NODULE_TYPES[les.nodule_type]} nodule"
    return {"pdac": "mass (PDAC mask)", "pnet": "mass (PNET mask)", "tumor": "mass", "nodule": "nodule", "cyst": "cyst"}.get(les.kind, "lesion")


def lesion_sentences(les: Lesion, f: Findings) -> list[Sentence]:
    g = organ_group(les.organ)
    out = []
    att = f"{les.attenuation_term} " if les.attenuation_term else ""
    out.append(Sentence(section="findings", group=g, finding_ids=[les.id], text=(
        f"{les.id}: {att}{_kind(les)} {_location(les)}, {size_phrase(les)} "
        f"(long x short axis, {slice_phrase(les, f.study)}), volume {volume_phrase(les)}.")))
    if les.organ and organ_family(les.organ) == "lung" and les.kind == "nodule" and not les.nodule_type:
        out.append(Sentence(section="findings", group=g, finding_ids=[les.id],
                            text=f"{les.id} nodule type (solid, part-solid or ground-glass) not determined."))
    if les.organ_mean_hu is not None:
        out.append(Sentence(section="findings", group=g, finding_ids=[les.id], text=(
            f"{les.id} mean attenuation {les.mean_hu:.1f} HU versus {les.organ_mean_hu:.1f} HU in the surrounding "
            f"{_human(les.organ)} (difference {les.hu_difference:.1f} HU).")))
    else:
        out.append(Sentence(section="findings", group=g, finding_ids=[les.id], text=f"{les.id} mean attenuation {les.mean_hu:.1f} HU."))
    if les.components:
        out.append(Sentence(section="findings", group=g, finding_ids=[les.id],
                            text=f"{les.id} composition: " + "; ".join(c.split(":")[0] for c in les.components) + "."))
    contacts = [v for v in les.vessel_contacts if v.category.value != "none"]
    for v in contacts:
        verb = "encases" if v.category.value == "encasement" else "abuts"
        out.append(Sentence(section="findings", group="vessels", finding_ids=[les.id], text=(
            f"{les.id} {verb} the {vessel_display(v.vessel)} ({v.max_angle_deg:.0f} degrees of circumference, "
            f"over {v.contact_length_mm:.1f} mm).")))
    clear = [v for v in les.vessel_contacts if v.category.value == "none"]
    if clear:
        out.append(Sentence(section="findings", group="vessels", finding_ids=[les.id], text=(
            f"{les.id} has no contact with the " + ", ".join(vessel_display(v.vessel) for v in clear) + ".")))
    for h in les.staging:
        if h.category != "not assessed":
            out.append(Sentence(section="findings", group=g, finding_ids=[les.id], text=f"{les.id} {h.system}: {h.category}."))
    return out


def _organ_sentence(o: Organ, group: str) -> list[Sentence]:
    oid = [organ_id(o.name)]
    name = _human(o.name)
    if o.status.value == "absent":
        return [Sentence(section="findings", group=group, finding_ids=oid, text=f"The {name} is not seen on the segmentation.")]
    if implausible(o):
        return [Sentence(section="findings", group=group, finding_ids=oid,
                         text=f"The {name} mask is implausible (see Limitations): its measurements are not interpreted.")]
    hu = f", mean attenuation {o.mean_hu:.1f} HU" if o.mean_hu is not None else ""
    if o.status.value == "truncated_by_fov":
        s = [Sentence(section="findings", group=group, finding_ids=oid,
                      text=f"The {name} is incompletely imaged (cut off by the scan edge); its volume is not measured{hu} in the imaged part.")]
    else:
        s = [Sentence(section="findings", group=group, finding_ids=oid, text=f"The {name} measures {o.volume_ml:.1f} mL{hu}.")]
    for fl in o.flags:
        if fl.status == "positive" and fl.unit == "ratio" and fl.value is not None and fl.value <= 0:
            s.append(Sentence(section="findings", group=group, finding_ids=oid, text=(
                f"{fl.name.replace('_', ' ').capitalize()}: not assessed (a ratio of {fl.value:.2f} comes from a negative mean attenuation, "
                "outside the range the ratio rule is defined for).")))
        elif fl.status == "positive":
            val = f"{fl.value:.2f}" if fl.unit == "ratio" else f"{fl.value:.1f} {fl.unit}"
            thr = f"{fl.threshold:.2f}" if fl.unit == "ratio" else f"{fl.threshold:.1f} {fl.unit}"
            s.append(Sentence(section="findings", group=group, finding_ids=oid,
                              text=f"{fl.name.replace('_', ' ').capitalize()}: {val} against a threshold of {thr} ({fl.rule})."))
    return s


def _search_sentence(f: Findings, o: Organ, group: str, lesions: list[Lesion]) -> list[Sentence]:
    """'No lesion found in the liver (searched by mask liver_lesion.nii.gz).' only for a searched organ."""
    if o.status.value == "absent" or implausible(o) or any(l.organ == o.name for l in lesions):
        return []
    s = f.search_of(o.name)
    if s is None or not s.searched:
        return []
    by = ", ".join(s.by) if s.by else "a lesion search"
    edge = " in its imaged part" if o.status.value == "truncated_by_fov" else ""
    what = "lesion" if s.covers() else kinds_phrase(s).removesuffix("s")  # a cyst-only search says "no cyst"
    only = "" if s.covers() else f" for {kinds_phrase(s)} only"
    return [Sentence(section="findings", group=group, finding_ids=[organ_id(o.name)],
                     text=f"No {what} found in the {_human(o.name)}{edge} (searched{only} by {by}).")]


def _not_assessed(f: Findings, g: str) -> Sentence:
    fam = GROUP_FAMILY.get(g, g)
    hint = ignored_hint(f, fam)
    word = {"adrenals": "adrenal", "kidneys": "kidney"}.get(g, g)
    why = f"no {word} mask; {hint}" if hint else "no mask"
    return Sentence(section="findings", group=g, finding_ids=["study"], text=f"{GROUP_TITLES[g]}: not assessed ({why}).")


def limitation_sentences(f: Findings) -> list[Sentence]:
    return [Sentence(section="limitations", group="", finding_ids=ids, text=t) for t, ids in limitation_texts(f)]


def template_draft(f: Findings, style: str = "structured") -> ReportDraft:
    S: list[Sentence] = []
    ph = f.study.contrast_phase
    phase = {"non_contrast": "Non-contrast", "arterial": "Arterial-phase", "portal_venous": "Portal venous-phase",
             "delayed": "Delayed-phase", "contrast_unspecified": "Contrast-enhanced", "unknown": "Contrast phase unknown:"}[ph.phase]
    how = "from the DICOM header" if ph.source == "header" else ("estimated from vessel attenuation" if ph.source == "estimated" else "not determinable")
    S.append(Sentence(section="technique", group="", finding_ids=["study"],
                      text=f"{phase} CT ({how}), slice thickness {f.study.slice_thickness_mm:.1f} mm."))
    organs_by_group: dict[str, list[Organ]] = {}
    for o in f.organs:
        organs_by_group.setdefault(organ_group(o.name), []).append(o)
    lesions_by_group: dict[str, list[Lesion]] = {}
    for les in f.lesions:
        lesions_by_group.setdefault(organ_group(les.organ), []).append(les)
    vessel_sents: list[Sentence] = []
    for g in GROUPS:
        if g == "vessels":
            continue
        for o in organs_by_group.get(g, []):
            S += _organ_sentence(o, g)
            S += _search_sentence(f, o, g, f.lesions)
        for les in lesions_by_group.get(g, []):
            for s in lesion_sentences(les, f):
                (vessel_sents if s.group == "vessels" else S).append(s)
        if g in ABDOMINAL and not organs_by_group.get(g) and not lesions_by_group.get(g):
            S.append(_not_assessed(f, g))
    if vessel_sents:
        S += vessel_sents
    else:
        S.append(Sentence(section="findings", group="vessels", finding_ids=["study"],
                          text="No tumour-vessel contact was assessed (no lesion near a vessel mask)."))
    S += impression(f)
    S += limitation_sentences(f)
    return ReportDraft(engine="template", style=style, sentences=S)


def _actionable_rank(les: Lesion) -> tuple:
    cats = {h.category for h in les.staging}
    score = 0
    if "locally advanced" in cats or "T4" in cats:
        score = 3
    elif "borderline resectable" in cats or any(c.startswith("T3") for c in cats):
        score = 2
    elif les.recist_measurable and les.kind != "cyst":
        score = 1
    return (-score, -les.volume_ml)


def impression(f: Findings) -> list[Sentence]:
    out = []
    if not f.lesions:
        out.append(_no_lesion_impression(f))
    for les in sorted(f.lesions, key=_actionable_rank):
        stage = "; ".join(f"{h.system} {h.category}" for h in les.staging if h.category != "not assessed")
        out.append(Sentence(section="impression", group="", finding_ids=[les.id], text=(
            f"{les.id}: {size_phrase(les)} {les.attenuation_term + ' ' if les.attenuation_term else ''}"
            f"{_kind(les)} {_location(les)}" + (f" ({stage})" if stage else "") + ".")))
    if f.lesions:
        c = counts(f)
        per = ", ".join(f"{v} {k} lesion{'s' if v != 1 else ''}" for k, v in sorted(c.items()) if k not in ("total", "unassigned"))
        largest = max(f.lesions, key=lambda l: l.long_axis_mm)
        out.append(Sentence(section="impression", group="", finding_ids=["study", largest.id], text=(
            f"{c['total']} lesion{'s' if c['total'] != 1 else ''} in total ({per}), total lesion volume "
            f"{total_volume_ml(f):.2f} mL{' (lesions reaching the scan edge count with lower bounds)' if any(is_lower_bound(l) for l in f.lesions) else ''}; "
            f"largest {largest.id} at {'at least ' if is_lower_bound(largest) else ''}{largest.long_axis_mm:.1f} mm.")))
    trunc = [o for o in f.organs if o.status.value == "truncated_by_fov"]
    if trunc:
        out.append(Sentence(section="impression", group="", finding_ids=[organ_id(o.name) for o in trunc], text=(
            "Incompletely imaged (cut off by the scan edge, not fully assessable): " + ", ".join(_human(o.name) for o in trunc) + ".")))
    return out


def _no_lesion_impression(f: Findings) -> Sentence:
    """No lesion was measured: say where that was searched for, and where absence cannot be stated."""
    if not f.lesion_search:
        return Sentence(section="impression", group="", finding_ids=["study"], text=(
            "No lesion was measured; lesion-search coverage is not recorded in these findings, so absence of lesions "
            "cannot be stated for any organ."))
    def imaged(organ: str) -> bool:  # absence is said only of an organ whose mask shows it
        o = f.organ(organ)
        return o is not None and o.status.value != "absent" and not implausible(o)

    searched = [s for s in f.lesion_search if s.covers() and imaged(s.organ)]
    partial = [s for s in f.lesion_search if s.searched and not s.covers() and imaged(s.organ)]

    def edge(organ: str) -> str:
        o = f.organ(organ)
        return " in its imaged part" if o is not None and o.status.value == "truncated_by_fov" else ""
    part = " ".join(f"No {kinds_phrase(s).removesuffix('s')} found in the {_human(s.organ)}{edge(s.organ)} (searched for "
                    f"{kinds_phrase(s)} only, by {', '.join(s.by)})." for s in partial)
    if not searched:
        why = ("No search for lesions of every kind was run (no general lesion mask or tumour model)"
               if not any(s.covers() for s in f.lesion_search) else
               "No organ searched for lesions of every kind is seen on its mask")
        return Sentence(section="impression", group="", finding_ids=["study"], text=(
            (part + " " if part else "") + why + ": absence of lesions cannot be stated for any organ."))
    where = "; ".join(f"{_human(s.organ)} ({edge(s.organ).strip() + ', ' if edge(s.organ) else ''}by {', '.join(s.by) or 'a lesion search'})" for s in searched)
    rest = " Lesions were not searched for elsewhere (see Limitations)." if len(searched) < len(f.lesion_search) else ""
    return Sentence(section="impression", group="", finding_ids=["study"],
                    text=f"No lesion found in the organs searched: {where}.{(' ' + part) if part else ''}{rest}")
