"""Handlers of study- and organ-level facts: the contrast phase, an organ's status (measured,
incompletely imaged, ...), and whether an organ was searched for lesions."""

from __future__ import annotations

from perception.schema import Findings, Status
from reasoning.limitations import search_of
from reasoning.vqa.lookup import _members, _oid, _organ_name
from reasoning.vqa.question import Question
from reasoning.vqa.result import _Cannot, _Result


def _h_contrast_phase(f: Findings, q: Question) -> _Result:
    cp = f.study.contrast_phase
    how = {"header": "from the DICOM header", "estimated": "estimated from vessel attenuation"}.get(cp.source, cp.source)
    if cp.phase in ("unknown", "contrast_unspecified"):
        what = "contrast given, phase not determined" if cp.phase == "contrast_unspecified" else "phase unknown"
        raise _Cannot(f"contrast phase cannot be determined ({what}: {cp.rule})", ["study"], "study.contrast_phase")
    return _Result(cp.phase, None, ["study"], "study.contrast_phase",
                   f"{cp.phase.replace('_', ' ')} ({how}: {cp.rule})",
                   accept={cp.phase, cp.phase.replace("_", " "), cp.phase.replace("_", "-")})


_STATUS = {Status.measured: "measured", Status.truncated_by_fov: "incompletely imaged", Status.absent: "absent",
           Status.not_found: "not found", Status.failed: "failed"}
_STATUS_WHY = {Status.measured: "completely imaged and measured",
               Status.truncated_by_fov: "the mask reaches the scan edge: the organ is cut by the scan edge",
               Status.absent: "its mask is empty", Status.not_found: "not found", Status.failed: "its measurement failed"}


def _h_organ_status(f: Findings, q: Question) -> _Result:
    if not q.organ:
        raise _Cannot("organ status needs an organ")
    mem = _members(f, q.organ)
    if not mem:
        return _Result("not segmented", None, [], "organ masks of the study",
                       f"no {_organ_name(q.organ)} mask in this study: the organ was not segmented",
                       accept={"not segmented", "not assessed"})
    ids = [_oid(o.name) for o in mem]
    statuses = {o.status for o in mem}
    desc = "; ".join(f"{_organ_name(o.name)}: {_STATUS_WHY[o.status]}"
                     + (f" ({', '.join(o.touches_edges)})" if o.touches_edges else "") for o in mem)
    if len(statuses) > 1:
        raise _Cannot(f"'{q.organ}' names {len(mem)} organs with different status ({desc}): ask about one", ids, "organ status")
    st = statuses.pop()
    acc = {_STATUS[st], st.value, st.value.replace("_", " ")}
    if st == Status.truncated_by_fov:
        acc |= {"truncated", "partially imaged", "incomplete", "cut by the scan edge"}
    if st == Status.measured:
        acc |= {"completely imaged", "complete"}
    return _Result(_STATUS[st], None, ids, "organ status", desc, accept=acc)


def _h_search_coverage(f: Findings, q: Question) -> _Result:
    if not q.organ:
        raise _Cannot("lesion search coverage needs an organ")
    if not f.lesion_search:
        raise _Cannot("these findings do not record which organs were searched for lesions (written before schema 1.1.0)",
                      ["study"], "Findings.lesion_search")
    if not _members(f, q.organ) and f.search_of(q.organ) is None:
        raise _Cannot(f"no {_organ_name(q.organ)} mask and no lesion-search record for it in this study", ["study"],
                      "Findings.lesion_search")
    searched, why, ids = search_of(f, q.organ, q.lesion_kind)
    what = f"{q.lesion_kind}s" if q.lesion_kind else "lesions of every kind"
    if searched:
        return _Result("yes", None, ids, "Findings.lesion_search", f"the {_organ_name(q.organ)} was searched for {what}: {why}")
    return _Result("no", None, ids, "Findings.lesion_search",
                   f"the {_organ_name(q.organ)} was not searched for {what}: {why}; absence of lesions cannot be stated there")
