"""compare: analyze output folders (priors, oldest first, then the current study) -> Comparison.

Reads each folder's findings.json and inputs.json (the CT and masks its findings were made from, with their
SHA-256: a changed file is refused), registers the current CT to each prior (perception.followup.register),
rebuilds each lesion's voxels from its mask and 26-connected component (checked against its voxel count), matches
lesions per organ (perception.followup.match), decides each tracked lesion's state, size changes and doubling
time, and assesses RECIST 1.1 (perception.followup.recist). Nothing downstream reads voxels: this is perception.
"""

from __future__ import annotations

import hashlib
import json
import math
import uuid
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from radagent.errors import InputError

from . import recist as recist_mod
from .match import LesionGeometry, Match, apply, match
from .register import Grid, block_mean, register_grids
from .schema import (
    Change,
    Comparison,
    DoublingTime,
    Registration,
    StudyRef,
    TimePointMeasurement,
    TrackedLesion,
)

# organs whose registered masks measure the registration (when masked in both studies)
QUALITY_ORGANS = ("liver", "spleen", "kidney_right", "kidney_left", "pancreas", "stomach", "gallbladder",
                  "lung_right", "lung_left", "heart", "urinary_bladder")


@dataclass
class _Study:
    tp: int
    folder: Path
    findings: object  # perception.schema.Findings
    findings_sha256: str
    inputs: dict
    shape: tuple[int, int, int]
    affine: np.ndarray
    grid: Grid
    organs: dict[str, Grid]
    lesions: dict[str, LesionGeometry]
    study_date: date | None = None
    date_source: str | None = None
    # tracking UIDs a comparison written into this folder gave its lesions (kept across time points)
    uids: dict[str, str] = field(default_factory=dict)


@dataclass
class _Track:
    present: dict[int, str] = field(default_factory=dict)  # time point -> lesion id
    matches: dict[int, Match] = field(default_factory=dict)  # prior time point -> its match with the current lesion


def _read_json(path: Path, what: str) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise InputError(f"{path}: {what} not found") from None
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read {what} ({e})") from e


def _check_sha(path: str, expected: str | None, folder: Path, what: str) -> Path:
    from .inputs import sha256_path

    p = Path(path)
    if not p.exists():
        raise InputError(f"{folder / 'inputs.json'}: the {what} the findings were made from, {p}, no longer exists")
    found = sha256_path(p)
    if expected and found != expected:
        raise InputError(f"{p}: the {what} changed since `radagent analyze` wrote {folder}: expected SHA-256 "
                         f"{expected[:16]}..., found {found[:16]}... (re-run analyze)")
    return p


def _lesion_voxels(labels, les) -> np.ndarray:
    import cc3d

    m = labels.masks.get(les.mask) if labels is not None else None
    if m is None or m.empty:
        raise InputError(f"lesion {les.id}: its mask {les.mask!r} is not among the masks re-read for compare")
    comp = cc3d.connected_components(m.data, connectivity=26)
    idx = np.argwhere(comp == les.component_label)
    if len(idx) != les.voxel_count:
        raise InputError(f"lesion {les.id}: component {les.component_label} of mask {les.mask!r} has {len(idx)} voxels, "
                         f"findings.json says {les.voxel_count} (masks changed since analyze?)")
    return idx + np.array([a for a, _ in m.bbox])


def read_folder(folder: Path):
    """(Findings, findings.json bytes, inputs dict) of an analyze output folder; InputError naming what is wrong."""
    from pydantic import ValidationError

    from perception.schema import Findings

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: expected a `radagent analyze` output folder, found "
                         f"{'a file' if folder.exists() else 'nothing'}")
    fpath = folder / "findings.json"
    raw = fpath.read_bytes() if fpath.is_file() else None
    if raw is None:
        raise InputError(f"{fpath}: findings.json not found (expected a `radagent analyze` output folder)")
    try:
        findings = Findings.model_validate_json(raw)
    except (ValidationError, ValueError) as e:
        raise InputError(f"{fpath}: not a valid findings.json ({str(e).splitlines()[0]})") from e
    inputs = _read_json(folder / "inputs.json", "inputs.json (written by `radagent analyze` since issue 16; re-run "
                                                "analyze to record the CT and masks compare re-reads)")
    return findings, raw, inputs


def load_study(folder: Path, tp: int, with_masks: bool = True) -> _Study:
    """One analyze output folder, re-read for comparison."""
    findings, raw, inputs = read_folder(folder)
    st = study_from(Path(folder), tp, findings, hashlib.sha256(raw).hexdigest(), inputs, with_masks)
    st.uids = earlier_uids(Path(folder), st.findings_sha256)
    return st


def earlier_uids(folder: Path, findings_sha256: str) -> dict[str, str]:
    """Lesion id -> tracking UID from the folder's own comparison.json (`analyze --prior` / `compare` wrote it
    when this study was the current one), if it was made from these very findings; else nothing."""
    p = folder / "comparison.json"
    if not p.is_file():
        return {}
    try:
        old = Comparison.model_validate_json(p.read_bytes())
    except ValueError:
        return {}  # unreadable or another version: UIDs are derived afresh
    if old.current.findings_sha256 != findings_sha256:
        return {}
    tp = old.current.time_point
    return {m.lesion_id: t.tracking_uid for t in old.lesions if (m := t.at(tp)) is not None and m.lesion_id}


def study_from(folder: Path, tp: int, findings, findings_sha256: str, inputs: dict, with_masks: bool = True) -> _Study:
    """A study from its findings and inputs record (re-reads the CT and masks the record names)."""
    from perception.io import load_ct

    if not isinstance(inputs, dict) or not inputs.get("ct"):
        raise InputError(f"{folder / 'inputs.json'}: expected the CT path under 'ct', found "
                         f"{inputs.get('ct') if isinstance(inputs, dict) else inputs!r}")
    ct_path = _check_sha(inputs["ct"], inputs.get("ct_sha256"), folder, "CT")
    vol = load_ct(ct_path)
    if tuple(vol.shape) != tuple(findings.study.shape):
        raise InputError(f"{ct_path}: shape {vol.shape} differs from findings.json's {tuple(findings.study.shape)}")
    labels = None
    if inputs.get("masks") and with_masks:
        from perception.masks import load_masks

        m_path = _check_sha(inputs["masks"], inputs.get("masks_sha256"), folder, "masks")
        cm = _check_sha(inputs["class_map"], inputs.get("class_map_sha256"), folder, "class map") \
            if inputs.get("class_map") else None
        labels = load_masks(m_path, vol, cm, tol_mm=findings.settings.geometry_tolerance_mm,
                            mask_label=inputs.get("mask_label"))
    grid = block_mean(vol.hu, vol.affine)
    organs = {}
    if labels is not None:
        for name in QUALITY_ORGANS:
            m = labels.get(name)
            if m is not None:
                g = block_mean(m.dense().astype(np.uint8), vol.affine)
                organs[name] = Grid(g.data >= 0.5, g.affine)
    lesions = {}
    for les in findings.lesions:
        vox = _lesion_voxels(labels, les) if labels is not None else None
        lesions[les.id] = LesionGeometry(les.id, les.organ, np.asarray(les.centroid_mm, dtype=np.float64),
                                         les.long_axis_mm, les.volume_ml, vox, vol.affine if vox is not None else None)
    return _Study(tp, folder, findings, findings_sha256, inputs, tuple(vol.shape),
                  vol.affine, grid, organs, lesions)


def _parse_dates(study_dates, n: int) -> list[date | None]:
    if study_dates is None:
        return [None] * n
    if len(study_dates) != n:
        raise InputError(f"study dates: expected {n} (one per time point, priors then current), found {len(study_dates)}")
    out = []
    for d in study_dates:
        if d is None or isinstance(d, date):
            out.append(d)
            continue
        try:
            out.append(date.fromisoformat(str(d)))
        except ValueError:
            raise InputError(f"study date {d!r}: expected YYYY-MM-DD") from None
    known = [d for d in out if d is not None]
    if known != sorted(known) or len(set(known)) != len(known):
        raise InputError(f"study dates {[str(d) for d in out]}: expected strictly increasing dates (oldest prior first, "
                         "the current study last)")
    return out


def _inside(study: _Study, world_pt: np.ndarray) -> bool:
    ijk = apply(np.linalg.inv(study.affine), world_pt)[0]
    return bool(np.all((ijk > -0.5) & (ijk < np.asarray(study.shape) - 0.5)))


def compare(prior_dirs: list[Path], current: Path | _Study, *, study_dates: list | None = None,
            targets: list[str] | None = None, threads: int | None = None) -> Comparison:
    """Register the current study to each prior, match lesions, assess RECIST 1.1.

    ``study_dates``: one per time point (priors oldest first, then current; ISO strings or dates; None where
    unknown) for doubling times. ``targets``: RECIST target lesions by tracking id (default: chosen by the
    rules). ``current``: an analyze output folder, or a study made by ``study_from`` (analyze --prior: the
    current case compared before anything is written)."""
    from perception import __version__

    if not prior_dirs:
        raise InputError("compare: expected at least one prior study (an analyze output folder), found none")
    dates = _parse_dates(study_dates, len(prior_dirs) + 1)
    studies = [load_study(Path(d), tp) for tp, d in enumerate(prior_dirs)]
    studies.append(current if isinstance(current, _Study) else load_study(Path(current), len(prior_dirs)))
    for s, d in zip(studies, dates):
        s.study_date, s.date_source = d, ("given" if d is not None else None)
    cur = studies[-1]
    warnings: list[str] = []
    if any(s.inputs.get("segmented") for s in studies):
        warnings.append("some study's masks came from a segmentation model and were not kept: its lesions are matched "
                        "by registered position only, and registration quality has no organ-mask check")

    regs: list[Registration] = []
    T: dict[int, np.ndarray] = {}  # prior tp -> current world -> prior world
    for p in studies[:-1]:
        r = register_grids(p.grid, cur.grid, p.organs, cur.organs, fixed_tp=p.tp, moving_tp=cur.tp, threads=threads)
        regs.append(r)
        if r.status == "ok":
            T[p.tp] = np.asarray(r.transform_current_to_prior)
        else:
            warnings.append(f"registration of the current study to time point {p.tp} refused: {r.reason}; its lesions "
                            "are not compared")

    # tracks seeded by the current lesions, matched to each prior
    tracks: list[_Track] = [_Track(present={cur.tp: lid}) for lid in cur.lesions]
    by_cur = {t.present[cur.tp]: t for t in tracks}
    matched: dict[int, set[str]] = {p.tp: set() for p in studies[:-1]}
    for k, Tk in T.items():
        p = studies[k]
        overlap_ok = all(x.voxels is not None for x in [*p.lesions.values(), *cur.lesions.values()])
        for m in match(list(p.lesions.values()), list(cur.lesions.values()), Tk, use_overlap=overlap_ok):
            t = by_cur[m.b]
            t.present[k], t.matches[k] = m.a, m
            matched[k].add(m.a)
    # prior lesions not matched to any current lesion: chained from the most recent prior backwards
    for k in sorted(matched, reverse=True):
        p = studies[k]
        rest = [lid for lid in p.lesions if lid not in matched[k]]
        if k in T:
            for j in sorted(j for j in T if j > k):
                cand = [t for t in tracks if cur.tp not in t.present and j in t.present and k not in t.present]
                if not cand or not rest:
                    continue
                a_list = [studies[j].lesions[t.present[j]] for t in cand]
                b_list = [p.lesions[lid] for lid in rest]
                for m in match(a_list, b_list, T[j] @ np.linalg.inv(T[k]), use_overlap=False):
                    t = next(t for t in cand if t.present[j] == m.a)
                    t.present[k] = m.b
                    rest.remove(m.b)
        tracks += [_Track(present={k: lid}) for lid in rest]

    lesions = [_tracked(i, t, studies, T, dates) for i, t in enumerate(tracks)]
    rec = _recist(lesions, studies, targets)
    if not T:
        warnings.append("no registration accepted: no lesion could be compared")
    return Comparison(
        radagent_version=__version__,
        studies=[StudyRef(time_point=s.tp, role="current" if s is cur else "prior", analyze_dir=str(s.folder.absolute()),
                          findings_sha256=s.findings_sha256, ct=str(s.inputs["ct"]), masks=s.inputs.get("masks"),
                          study_date=s.study_date, study_date_source=s.date_source, n_lesions=len(s.lesions))
                 for s in studies],
        registrations=regs, lesions=lesions, recist=rec, warnings=warnings,
        matching={"gate_mm": 10.0, "gate_fraction_of_long_axis": 0.5})


def _absence(track: _Track, tp: int, studies: list[_Study], T: dict[int, np.ndarray], organ: str | None
             ) -> tuple[bool, str]:
    """Whether the lesion's absence at ``tp`` is established (organ searched there, location imaged), and why."""
    cur = studies[-1]
    if tp != cur.tp and tp not in T:
        return False, f"registration to time point {tp} refused"
    # the lesion's position in the current world
    if cur.tp in track.present:
        ref = cur.lesions[track.present[cur.tp]].centroid_mm
    else:
        j = max(track.present)
        if j not in T:
            return False, f"registration to time point {j} refused"
        ref = apply(np.linalg.inv(T[j]), studies[j].lesions[track.present[j]].centroid_mm)[0]
    pt = ref if tp == cur.tp else apply(T[tp], ref)[0]
    st = studies[tp]
    if not _inside(st, pt):
        return False, f"the location was not imaged at time point {tp} (outside its field of view)"
    if organ is None:
        return False, "the lesion lies in no organ mask: absence cannot be established"
    search = st.findings.search_of(organ)
    if search is None or not search.covers():
        why = search.reason if search is not None and search.reason else "no lesion search recorded for it"
        return False, f"{organ} was not searched for lesions at time point {tp} ({why})"
    return True, f"{organ} searched at time point {tp} by {', '.join(search.by) or 'a lesion mask'} and the location imaged"


def _lesion(studies, tp, lid):
    return studies[tp].findings.lesion(lid)


def _change(ref_tp: int, meas: list[TimePointMeasurement], absent: dict[int, tuple[bool, str]]) -> Change:
    a, b = meas[ref_tp], meas[-1]
    cur_tp = len(meas) - 1
    if a.lesion_id and b.lesion_id:
        if "lower_bound" in (a.size_qualifier, b.size_qualifier):
            return Change(reference_time_point=ref_tp, reason="a size is a lower bound (the lesion reaches the scan "
                                                              "edge): the change cannot be determined")
        return Change(reference_time_point=ref_tp, long_axis_abs_mm=round(b.long_axis_mm - a.long_axis_mm, 2),
                      long_axis_pct=round(100 * (b.long_axis_mm - a.long_axis_mm) / a.long_axis_mm, 2),
                      volume_abs_ml=round(b.volume_ml - a.volume_ml, 4),
                      volume_pct=round(100 * (b.volume_ml - a.volume_ml) / a.volume_ml, 2))
    if a.lesion_id and absent.get(cur_tp, (False,))[0]:
        return Change(reference_time_point=ref_tp, long_axis_abs_mm=-a.long_axis_mm, long_axis_pct=-100.0,
                      volume_abs_ml=-a.volume_ml, volume_pct=-100.0, reason="not seen now: " + absent[cur_tp][1])
    if b.lesion_id and absent.get(ref_tp, (False,))[0]:
        return Change(reference_time_point=ref_tp, long_axis_abs_mm=b.long_axis_mm, volume_abs_ml=b.volume_ml,
                      reason=f"absent at time point {ref_tp} ({absent[ref_tp][1]}): a percent change is undefined")
    missing = ref_tp if not a.lesion_id else cur_tp
    return Change(reference_time_point=ref_tp,
                  reason=f"not assessable at time point {missing}: {absent.get(missing, (False, 'not seen'))[1]}")


def _doubling(meas: list[TimePointMeasurement], studies: list[_Study], ref_tp: int) -> DoublingTime:
    a, b = meas[ref_tp], meas[-1]
    d1, d2 = studies[ref_tp].study_date, studies[-1].study_date
    base = {"from_time_point": ref_tp, "to_time_point": len(meas) - 1}
    if not (a.lesion_id and b.lesion_id):
        return DoublingTime(days=None, **base, reason="the lesion is not measured at both time points")
    if d1 is None or d2 is None:
        return DoublingTime(days=None, **base, reason="study dates not known (give them: --date)")
    if "lower_bound" in (a.size_qualifier, b.size_qualifier):
        return DoublingTime(days=None, **base, reason="a volume is a lower bound (scan edge)")
    if b.volume_ml <= a.volume_ml:
        return DoublingTime(days=None, **base, reason=f"the volume did not grow ({a.volume_ml:.3f} -> {b.volume_ml:.3f} "
                                                      "ml): no doubling time")
    days = math.log(2) * (d2 - d1).days / math.log(b.volume_ml / a.volume_ml)
    return DoublingTime(days=round(days, 1), **base)


def _tracked(i: int, t: _Track, studies: list[_Study], T: dict[int, np.ndarray], dates) -> TrackedLesion:
    cur = studies[-1]
    n = len(studies)
    first_tp = min(t.present)
    first = _lesion(studies, first_tp, t.present[first_tp])
    organ = _lesion(studies, max(t.present), t.present[max(t.present)]).organ
    absent = {tp: _absence(t, tp, studies, T, organ) for tp in range(n) if tp not in t.present}
    meas = []
    for tp in range(n):
        lid = t.present.get(tp)
        if lid is None:
            ok, why = absent[tp]
            meas.append(TimePointMeasurement(time_point=tp, lesion_id=None, status="absent" if ok else "not_assessable",
                                             reason=why))
            continue
        les = _lesion(studies, tp, lid)
        m = t.matches.get(tp)
        meas.append(TimePointMeasurement(
            time_point=tp, lesion_id=lid, long_axis_mm=les.long_axis_mm, short_axis_mm=les.short_axis_mm,
            volume_ml=les.volume_ml, size_qualifier=les.size_qualifier, centroid_mm=les.centroid_mm,
            match_confidence=m.confidence if m else None, match_distance_mm=m.distance_mm if m else None,
            match_overlap=m.dice if m else None))
    priors_ok = sorted(T)
    lp = priors_ok[-1] if priors_ok else None
    conf = None
    if lp is None:
        state, reason = "not_assessable", "no registration of the current study to a prior was accepted"
    elif cur.tp in t.present and lp in t.present:
        m = t.matches[lp]
        conf = m.confidence
        state = "persisting"
        reason = (f"matched to {t.present[lp]} at time point {lp}: registered centroids {m.distance_mm:.1f} mm apart"
                  + (f", overlap (Dice) {m.dice:.2f}" if m.dice is not None else "") + f", confidence {m.confidence:.2f}")
    elif cur.tp in t.present:
        older = [k for k in t.present if k != cur.tp]
        if absent[lp][0]:
            state, reason = "new", f"absent at time point {lp}: {absent[lp][1]}"
        elif older:
            k = max(older)
            state, conf = "persisting", t.matches[k].confidence
            reason = f"not assessable at time point {lp} ({absent[lp][1]}); matched to {t.present[k]} at time point {k}"
        else:
            state, reason = "not_assessable", f"cannot say whether it is new: {absent[lp][1]}"
    else:
        if absent[cur.tp][0]:
            state, reason = "disappeared", f"not seen now: {absent[cur.tp][1]}"
        else:
            state, reason = "not_assessable", f"not assessable now: {absent[cur.tp][1]}"
        if max(t.present) not in T and state == "disappeared":
            state, reason = "not_assessable", f"registration to time point {max(t.present)} refused"
    uid_seed = f"{studies[first_tp].findings_sha256}/{first.id}"
    kept = [studies[tp].uids[lid] for tp, lid in sorted(t.present.items()) if lid in studies[tp].uids]
    return TrackedLesion(
        tracking_id=f"T{i + 1}", tracking_uid=kept[0] if kept else "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, uid_seed).int),
        organ=organ, state=state, state_reason=reason, match_confidence=conf, measurements=meas,
        change_from_prior=_change(lp, meas, absent) if lp is not None else None,
        change_from_baseline=_change(0, meas, absent) if 0 in T or (0 == cur.tp) else None,
        doubling_time=_doubling(meas, studies, lp) if lp is not None else None)


def _recist(lesions: list[TrackedLesion], studies: list[_Study], targets: list[str] | None):
    n = len(studies)
    tracks = []
    for tl in lesions:
        ds = []
        for m in tl.measurements:
            ds.append(m.long_axis_mm if m.lesion_id else (0.0 if m.status == "absent" else None))
        base = tl.measurements[0]
        les0 = studies[0].findings.lesion(base.lesion_id) if base.lesion_id else None
        tracks.append(recist_mod.Track(tl.tracking_id, tl.organ, ds,
                                       measurable_at_baseline=bool(les0 and les0.recist_measurable),
                                       measurable_rule=les0.recist_rule if les0 else "",
                                       lower_bound_at_baseline=bool(les0 and les0.size_qualifier == "lower_bound")))
    try:
        return recist_mod.assess(tracks, n, targets)
    except ValueError as e:
        raise InputError(str(e)) from e

