"""Facts a report may state, derived from Findings only, keyed by finding id.

Finding ids: ``study`` (technique, counts, totals), ``organ:<name>`` (one organ), ``L<n>`` (one
lesion with its vessel contacts and staging). Derived values (counts, total lesion volume) are
computed here once, so the template, the LLM prompt and the validator all see the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from perception.registry import COUINAUD, ORGANS, VESSELS, organ_family
from perception.schema import Findings, Lesion, Organ

from .limitations import slice_number


@dataclass
class Fact:
    value: float
    unit: str  # mm | mL | HU | deg | ratio | %
    name: str


@dataclass
class IdFacts:
    numbers: list[Fact] = field(default_factory=list)
    organs: set[str] = field(default_factory=set)  # organ families this id is about or adjacent to
    segments: set[str] = field(default_factory=set)  # e.g. "liver_segment_7", "pancreas_head"
    laterality: set[str] = field(default_factory=set)
    poles: set[str] = field(default_factory=set)
    vessels: dict[str, str] = field(default_factory=dict)  # vessel mask name -> category
    stages: set[str] = field(default_factory=set)  # "T2", "borderline resectable", ...
    slices: set[int] = field(default_factory=set)
    attenuation: set[str] = field(default_factory=set)


def organ_id(name: str) -> str:
    return f"organ:{name}"


def lesion_phrase_organ(les: Lesion) -> str | None:
    return organ_family(les.organ) if les.organ else None


def counts(f: Findings) -> dict[str, int]:
    """Lesion counts: 'total' and per organ family."""
    out = {"total": len(f.lesions)}
    for les in f.lesions:
        fam = lesion_phrase_organ(les) or "unassigned"
        out[fam] = out.get(fam, 0) + 1
    return out


def total_volume_ml(f: Findings, family: str | None = None) -> float:
    return sum(l.volume_ml for l in f.lesions if family is None or lesion_phrase_organ(l) == family)


def _organ_facts(o: Organ) -> IdFacts:
    x = IdFacts()
    x.organs.add(organ_family(o.name))
    if o.name.endswith(("_left", "_right")):
        x.laterality.add(o.name.rsplit("_", 1)[1])
    for v, unit, n in ((o.volume_ml, "mL", "volume_ml"), (o.imaged_volume_ml, "mL", "imaged_volume_ml"), (o.mean_hu, "HU", "mean_hu"), (o.median_hu, "HU", "median_hu"),
                       (o.sd_hu, "HU", "sd_hu")):
        if v is not None:
            x.numbers.append(Fact(v, unit, n))
    for fl in o.flags:
        if "spleen" in fl.rule:  # ratio flags compare with the spleen
            x.organs.add("spleen")
        x.numbers.append(Fact(fl.threshold, fl.unit if fl.unit != "ratio" else "ratio", f"{fl.name}.threshold"))
        if fl.value is not None:
            x.numbers.append(Fact(fl.value, fl.unit if fl.unit != "ratio" else "ratio", f"{fl.name}.value"))
    return x


def _lesion_facts(les: Lesion) -> IdFacts:
    x = IdFacts()
    if les.organ:
        x.organs.add(organ_family(les.organ))
        if les.organ.endswith(("_left", "_right")):
            x.laterality.add(les.organ.rsplit("_", 1)[1])
    x.organs.update(organ_family(a) for a in les.adjacent_organs)
    if les.laterality:
        x.laterality.add(les.laterality)
    for s in les.segments:
        x.segments.add(s)
        if s.startswith("liver_segment_"):
            n = int(s.rsplit("_", 1)[1])
            x.laterality.add("right" if n >= 5 else ("left" if n >= 2 else "caudate"))
        if s.startswith("lung_"):
            x.laterality.add(s.rsplit("_", 1)[1])
    if les.kidney_pole:
        x.poles.add(les.kidney_pole)
    for v, unit, n in ((les.long_axis_mm, "mm", "long_axis_mm"), (les.short_axis_mm, "mm", "short_axis_mm"),
                       (les.max_diameter_3d_mm, "mm", "max_diameter_3d_mm"), (les.volume_ml, "mL", "volume_ml"),
                       (les.mean_hu, "HU", "mean_hu"), (les.median_hu, "HU", "median_hu"), (les.sd_hu, "HU", "sd_hu"),
                       (les.organ_mean_hu, "HU", "organ_mean_hu"), (les.hu_difference, "HU", "hu_difference")):
        if v is not None:
            x.numbers.append(Fact(v, unit, n))
    if les.hu_difference is not None:
        x.numbers.append(Fact(abs(les.hu_difference), "HU", "abs_hu_difference"))
    x.numbers.append(Fact(10.0, "mm", "recist_min_long_axis"))
    for vc in les.vessel_contacts:
        x.vessels[vc.vessel] = vc.category.value
        x.numbers.append(Fact(vc.max_angle_deg, "deg", f"{vc.vessel}.max_angle_deg"))
        x.numbers.append(Fact(vc.contact_length_mm, "mm", f"{vc.vessel}.contact_length_mm"))
    for h in les.staging:
        x.stages.add(h.category)
    x.slices.add(slice_number(les))  # the image number written in text, never the 0-based index
    if les.key_slice is not None:
        x.numbers.append(Fact(les.key_slice.table_position_mm, "mm", "table_position_mm"))
    if les.attenuation:
        x.attenuation.add(les.attenuation.value)
    return x


def build_facts(f: Findings) -> dict[str, IdFacts]:
    facts: dict[str, IdFacts] = {}
    st = IdFacts()
    st.numbers += [Fact(f.study.slice_thickness_mm, "mm", "slice_thickness_mm")]
    st.numbers += [Fact(v, "mm", f"spacing_{i}") for i, v in enumerate(f.study.spacing_mm)]
    cp = f.study.contrast_phase
    for v, n in ((cp.aorta_hu, "aorta_hu"), (cp.portal_vein_hu, "portal_vein_hu")):
        if v is not None:
            st.numbers.append(Fact(v, "HU", n))
    st.numbers.append(Fact(total_volume_ml(f), "mL", "total_lesion_volume_ml"))
    fams = {lesion_phrase_organ(l) for l in f.lesions if l.organ}
    for fam in fams:
        st.numbers.append(Fact(total_volume_ml(f, fam), "mL", f"{fam}.total_lesion_volume_ml"))
    st.organs.update(organ_family(o.name) for o in f.organs)
    st.organs.update(lesion_phrase_organ(l) for l in f.lesions if l.organ)
    facts["study"] = st
    for o in f.organs:
        facts[organ_id(o.name)] = _organ_facts(o)
    for les in f.lesions:
        facts[les.id] = _lesion_facts(les)
    return facts


def quotable(f: Findings) -> set[str]:
    """Strings of Findings a report may quote verbatim (warnings, ignored masks, lesion-search records,
    plausibility checks); a quoted one is checked as a quotation, not parsed for claims."""
    out = set(f.study.warnings)
    for m in f.ignored_masks:
        out |= {m.name, m.source, m.reason, *m.did_you_mean}
    for s in f.lesion_search:
        out |= set(s.by) | ({s.reason} if s.reason else set())
    for o in f.organs:
        if o.plausibility:
            out |= {c.detail for c in o.plausibility.checks}
        out |= {fl.rule for fl in o.flags}  # a flag's rule, quoted with its value, is not a claim about this study
    out |= {m.name for m in f.masks}
    return {q for q in out if q}


def all_ids(f: Findings) -> list[str]:
    return ["study"] + [organ_id(o.name) for o in f.organs] + [l.id for l in f.lesions]


def couinaud(seg: str) -> str:
    return COUINAUD.get(seg, seg)


def vessel_display(name: str) -> str:
    return VESSELS.get(name, ("", name.replace("_", " ")))[1]


KNOWN_ORGAN_FAMILIES = sorted(set(ORGANS.values()))
