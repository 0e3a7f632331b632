"""The chat agent's tools (see :mod:`reasoning.agent`): deterministic functions over one Findings
object (:class:`FindingsTools`), the argument schemas the model sees (:data:`TOOL_SPECS`), and
their LangChain wrapping. They read the Findings object only, never voxels."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from perception.registry import organ_family
from perception.schema import Findings, Lesion, Organ, Status
from reasoning import vqa
from reasoning.knowledge import lookup_medical_knowledge
from reasoning.limitations import slice_ref_json
from reasoning.vqa import SUBTYPES, Answer, Question
from reasoning.vqa.followup import find_lesion, ranked_lesions

SubtypeName = Literal[tuple(SUBTYPES)]  # type: ignore[valid-type]
DERIVABLE_UNITS = ("mL", "mm", "HU", "%", "ratio")


@dataclass
class ToolResult:
    """What a tool returns: ``data`` (JSON, what the model sees), the finding ids it rests on, the
    Answer (answer_question) and numbers it derived (value, unit) that are not findings facts."""

    data: Any
    finding_ids: list[str] = field(default_factory=list)
    answer: Answer | None = None
    values: list[tuple[float, str]] = field(default_factory=list)
    error: str | None = None

    def content(self) -> str:
        return json.dumps({"error": self.error} if self.error else self.data, separators=(",", ":"), default=str)


def _r(v: float | None, nd: int) -> float | None:
    return None if v is None else round(float(v), nd)


def _lesion_row(les: Lesion, rank: int | None = None) -> dict:
    row = {"id": les.id, "organ": les.organ, "kind": les.kind, "volume_ml": _r(les.volume_ml, 3),
           "long_axis_mm": _r(les.long_axis_mm, 1), "short_axis_mm": _r(les.short_axis_mm, 1),
           "mean_hu": _r(les.mean_hu, 1), "attenuation": les.attenuation.value if les.attenuation else None,
           "segments": les.segments}
    if rank is not None:
        row = {"rank": rank, **row}
    return row


_UNITS = {"volume_ml": "mL", "mean_hu": "HU", "long_axis_mm": "mm", "short_axis_mm": "mm", "max_diameter_3d_mm": "mm",
          "lesion_count": "lesions", "total_lesion_volume_ml": "mL"}
CompareField = Literal["volume_ml", "mean_hu", "long_axis_mm", "short_axis_mm", "max_diameter_3d_mm", "lesion_count",
                       "total_lesion_volume_ml"]


class FindingsTools:
    """The agent's tools as plain functions over one Findings object."""

    def __init__(self, findings: Findings):
        self.f = findings

    # answer_question ----------------------------------------------------------------------------
    def answer_question(self, subtype: str, organ: str | None = None, organs: list[str] | None = None,
                        lesion_id: str | None = None, segments: list[str] | None = None, location: str | None = None,
                        measure: str | None = None, metric: str | None = None, aggregate: str | None = None,
                        diameter: str | None = None, direction: str | None = None,
                        lesion_kind: str | None = None) -> ToolResult:
        kw = {"organ": organ, "organs": organs, "lesion_id": lesion_id, "segments": segments, "location": location,
              "measure": measure, "metric": metric, "aggregate": aggregate, "diameter": diameter, "direction": direction,
              "lesion_kind": lesion_kind}
        kw = {k: v for k, v in kw.items() if v not in (None, "", [])}
        try:
            q = Question(subtype=subtype, **kw)
        except (ValidationError, ValueError) as e:
            msg = "; ".join(d["msg"] for d in e.errors()) if isinstance(e, ValidationError) else str(e)
            return ToolResult(None, error=f"invalid question: {msg}")
        a = vqa.answer(self.f, q)
        values = []
        if a.status == "answered" and isinstance(a.value, (int, float)) and a.unit in DERIVABLE_UNITS:
            values.append((float(a.value), a.unit))
        data = {"status": a.status, "answer": a.answer, "unit": a.unit, "subtype": a.subtype,
                "explanation": a.explanation, "reason": a.reason, "finding_ids": a.finding_ids}
        return ToolResult({k: v for k, v in data.items() if v is not None}, list(a.finding_ids), a, values)

    # lookups ------------------------------------------------------------------------------------
    def list_lesions(self, organ: str | None = None) -> ToolResult:
        try:
            o = vqa.canonical_organ(organ) if organ else None
        except ValueError as e:
            return ToolResult(None, error=str(e))
        les = ranked_lesions(self.f, o)
        total = sum(l.volume_ml for l in les)
        data = {"organ": o or "all", "count": len(les), "total_volume_ml": round(total, 3),
                "lesions": [_lesion_row(l, i + 1) for i, l in enumerate(les)], "order": "largest volume first"}
        return ToolResult(data, [l.id for l in les], values=[(total, "mL")])

    def get_lesion(self, lesion_id: str) -> ToolResult:
        lid = (lesion_id or "").strip().upper()
        les = find_lesion(self.f, lid) if re.fullmatch(r"L\d+", lid) else None
        if les is None:
            return ToolResult(None, error=f"no lesion {lesion_id!r} (lesions: {', '.join(l.id for l in self.f.lesions) or 'none'})")
        fam = organ_family(les.organ) if les.organ else None
        rank = [l.id for l in ranked_lesions(self.f, fam)].index(les.id) + 1 if fam else None
        data = _lesion_row(les)
        data.update({
            "rank_in_organ_by_volume": rank, "max_diameter_3d_mm": _r(les.max_diameter_3d_mm, 1),
            "key_slice": slice_ref_json(les), "size_qualifier": les.size_qualifier, "organ_mean_hu": _r(les.organ_mean_hu, 1),
            "hu_difference": _r(les.hu_difference, 1), "laterality": les.laterality, "kidney_pole": les.kidney_pole,
            "adjacent_organs": les.adjacent_organs, "components": les.components,
            "vessel_contacts": [{"vessel": v.vessel, "category": v.category.value, "max_angle_deg": round(v.max_angle_deg),
                                 "contact_length_mm": _r(v.contact_length_mm, 1)} for v in les.vessel_contacts],
            "staging": [{"system": h.system, "category": h.category} for h in les.staging if h.category != "not assessed"],
            "touches_scan_edge": bool(les.touches_edges)})
        return ToolResult({k: v for k, v in data.items() if v not in (None, [])}, [les.id])

    def _organs(self, organ: str) -> tuple[str, list[Organ]]:
        name = vqa.canonical_organ(organ)
        o = self.f.organ(name)
        members = [o] if o is not None else [x for x in self.f.organs if organ_family(x.name) == name]
        return name, members

    def get_organ(self, organ: str) -> ToolResult:
        try:
            name, members = self._organs(organ)
        except ValueError as e:
            return ToolResult(None, error=str(e))
        if not members:
            return ToolResult(None, error=f"no {name} mask in this study (organs: {', '.join(o.name for o in self.f.organs)})")
        rows, values = [], []
        for o in members:
            les = ranked_lesions(self.f, o.name)
            tot = sum(l.volume_ml for l in les)
            values.append((tot, "mL"))
            row = {"name": o.name, "status": o.status.value, "volume_ml": _r(o.volume_ml, 3), "mean_hu": _r(o.mean_hu, 1),
                   "lesion_ids": [l.id for l in les], "lesion_count": len(les), "total_lesion_volume_ml": round(tot, 3),
                   "flags": [{"name": fl.name, "status": fl.status} for fl in o.flags]}
            if o.status == Status.truncated_by_fov:
                row["note"] = f"reaches the scan edge ({', '.join(o.touches_edges)}): incompletely imaged, volume not measured"
            rows.append({k: v for k, v in row.items() if v not in (None, [])})
        return ToolResult({"organ": name, "members": rows}, [f"organ:{o.name}" for o in members], values=values)

    def _value(self, ref: str, fld: str) -> tuple[str, float, list[str]]:
        r = ref.strip()
        if re.fullmatch(r"[Ll]\d+", r):
            les = find_lesion(self.f, r.upper())
            if les is None:
                raise ValueError(f"no lesion {r!r}")
            if fld == "lesion_count":
                raise ValueError("lesion_count compares organs, not lesions")
            if fld == "total_lesion_volume_ml":
                fld = "volume_ml"
            v = getattr(les, fld, None)
            if v is None:
                raise ValueError(f"{les.id}: {fld} not measured")
            return les.id, float(v), [les.id]
        name, members = self._organs(r)
        if not members:
            raise ValueError(f"no {name} mask in this study")
        ids = [f"organ:{o.name}" for o in members]
        les = ranked_lesions(self.f, name)
        if fld == "lesion_count":
            return name, float(len(les)), ids
        if fld == "total_lesion_volume_ml":
            return name, float(sum(l.volume_ml for l in les)), ids
        if fld not in ("volume_ml", "mean_hu"):
            raise ValueError(f"{fld} is a lesion field; organs compare on volume_ml, mean_hu, lesion_count, total_lesion_volume_ml")
        vals = [getattr(o, fld) for o in members]
        if any(v is None for v in vals):
            bad = [o.name for o, v in zip(members, vals) if v is None]
            raise ValueError(f"{fld} not available for {', '.join(bad)} (truncated by the scan edge or absent)")
        if fld == "mean_hu" and len(members) > 1:
            raise ValueError(f"mean_hu of {name}: name one side ({', '.join(o.name for o in members)})")
        return name, float(sum(vals)), ids

    def compare(self, a: str, b: str, field: str = "volume_ml") -> ToolResult:
        if field not in _UNITS:
            return ToolResult(None, error=f"unknown field {field!r} (one of {', '.join(_UNITS)})")
        try:
            na, va, ia = self._value(a, field)
            nb, vb, ib = self._value(b, field)
        except ValueError as e:
            return ToolResult(None, error=str(e))
        unit = _UNITS[field]
        larger = "equal" if va == vb else (na if va > vb else nb)
        data = {"field": field, "unit": unit, "a": {"id": na, "value": round(va, 3)}, "b": {"id": nb, "value": round(vb, 3)},
                "larger": larger, "difference": round(va - vb, 3)}
        values = [(va - vb, unit), (abs(va - vb), unit)]
        if vb:
            data["ratio"] = round(va / vb, 3)
            values.append((va / vb, "ratio"))
        if va:
            values.append((vb / va, "ratio"))
        return ToolResult(data, ia + ib, values=[(v, u) for v, u in values if u in DERIVABLE_UNITS])

    def lookup_medical_knowledge(self, topic: str) -> ToolResult:
        entries = lookup_medical_knowledge(topic or "")
        if not entries:
            return ToolResult(None, error=f"no knowledge entry matches {topic!r}")
        data = [{"key": e.key, "topic": e.topic, "rule": e.rule, "values": list(e.values), "unit": e.unit, "source": e.source,
                 **({"requires_phase": e.requires_phase} if e.requires_phase else {}), **({"note": e.note} if e.note else {})}
                for e in entries]
        values = [(v, e.unit) for e in entries for v in e.values if e.unit in DERIVABLE_UNITS]
        return ToolResult(data, [], values=values)

    def call(self, name: str, args: dict) -> ToolResult:
        fn = getattr(self, name, None)
        if name not in TOOL_NAMES or fn is None:
            return ToolResult(None, error=f"unknown tool {name!r}")
        try:
            return fn(**args)
        except TypeError as e:
            return ToolResult(None, error=f"bad arguments for {name}: {e}")


# tool argument schemas (what the model sees)
class AnswerQuestionArgs(BaseModel):
    subtype: SubtypeName = Field(description="question type")
    organ: str | None = Field(None, description="organ, e.g. liver, pancreas, spleen, kidney, kidney_left")
    organs: list[str] | None = Field(None, description="organs for ratios, comparisons, sums")
    lesion_id: str | None = Field(None, description="lesion id L1, L2, ...; default: the largest in the organ")
    segments: list[str] | None = Field(None, description="sub-segments to compare, e.g. liver_segment_7")
    location: str | None = Field(None, description="segment or organ for lesion count by location")
    measure: Literal["volume", "lesion_count", "lesion_volume"] | None = None
    metric: Literal["count", "volume"] | None = None
    aggregate: Literal["largest", "total"] | None = None
    diameter: Literal["long_axis", "short_axis", "3d"] | None = None
    direction: Literal["larger", "smaller"] | None = None
    lesion_kind: Literal["cyst", "tumor"] | None = None


class ListLesionsArgs(BaseModel):
    organ: str | None = Field(None, description="organ (e.g. liver); omit for all lesions")


class GetLesionArgs(BaseModel):
    lesion_id: str = Field(description="lesion id, e.g. L1")


class GetOrganArgs(BaseModel):
    organ: str = Field(description="organ, e.g. liver, spleen, kidney_left")


class CompareArgs(BaseModel):
    a: str = Field(description="lesion id (L1) or organ name")
    b: str = Field(description="lesion id (L2) or organ name")
    field: CompareField = Field("volume_ml", description="what to compare")


class KnowledgeArgs(BaseModel):
    topic: str = Field(description="topic, e.g. splenomegaly, steatosis, renal cyst")


TOOL_SPECS: dict[str, tuple[type[BaseModel], str]] = {
    "answer_question": (AnswerQuestionArgs, ("Answer a standard question type about this study from its measurements "
                                             "(returns the answer, unit, explanation and finding ids).")),
    "list_lesions": (ListLesionsArgs, "List lesions (of one organ or all), largest volume first, with size and HU."),
    "get_lesion": (GetLesionArgs, "All measurements of one lesion."),
    "get_organ": (GetOrganArgs, "Measurements of one organ: status, volume, mean HU, its lesions."),
    "compare": (CompareArgs, "Compare two lesions or two organs on one field (difference, ratio, which is larger)."),
    "lookup_medical_knowledge": (KnowledgeArgs, "Thresholds and rules of the knowledge base, with sources."),
}
TOOL_NAMES = tuple(TOOL_SPECS)


def langchain_tools(tools: FindingsTools) -> list:
    """The tools as LangChain StructuredTools; each returns (content for the model, ToolResult artifact)."""
    from langchain_core.tools import StructuredTool

    out = []
    for name, (schema, desc) in TOOL_SPECS.items():
        def run(_name=name, **kwargs):
            res = tools.call(_name, kwargs)
            return res.content(), res

        out.append(StructuredTool.from_function(run, name=name, description=desc, args_schema=schema,
                                                response_format="content_and_artifact"))
    return out
