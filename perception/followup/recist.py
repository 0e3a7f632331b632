"""RECIST 1.1 (Eisenhauer et al., Eur J Cancer 2009;45:228-247) from tracked lesion diameters.

Input per tracked lesion: its long axis per time point, where 0.0 means an established absence (the organ was
searched there and the location imaged) and None means not assessable. Baseline is time point 0, the current
study the last. Every rule applied is written out with its numbers (``rules_fired``).

- Targets (RECIST 1.1 sec. 4.1-4.2): measurable at baseline (long axis >= 10 mm on CT, the findings' rule), complete
  size (a lesion reaching the scan edge has a lower-bound size and is not a target), at most 2 per organ and 5 in
  all, largest first; or given by the user. Every other baseline lesion is a non-target. No lymph-node masks
  exist yet, so the short-axis node rules never apply.
- Target response: CR all targets gone; PD sum >= 20 % above the nadir (smallest sum before now, baseline
  included) and >= 5 mm above it; PR sum >= 30 % below baseline; otherwise SD; NE when a target is not assessable
  (unless the assessable ones already make PD).
- Non-target response: CR all gone; NE some not assessable; else non-CR/non-PD. Unequivocal progression of
  non-targets needs a reader's judgement: it is not called here (the rule says so).
- New lesion (present now, not at baseline, and established absent at some earlier time point) -> PD. Overall response by Table 1
  (targets present) or Table 2 (non-target disease only).
"""

from __future__ import annotations

from dataclasses import dataclass

from .schema import Recist, RecistLesion, RecistRule

MEASURABLE_MM = 10.0
MAX_TARGETS = 5
MAX_PER_ORGAN = 2
PD_FRACTION = 0.20
PD_ABS_MM = 5.0
PR_FRACTION = 0.30


@dataclass(frozen=True)
class Track:
    tracking_id: str
    organ: str | None
    diameters: list[float | None]  # per time point; 0.0 = established absence, None = not assessable
    measurable_at_baseline: bool = False
    measurable_rule: str = ""
    lower_bound_at_baseline: bool = False


def _fmt(x: float | None) -> str:
    return "not assessable" if x is None else f"{x:.1f} mm"


def _sum(tracks: list[Track], tp: int) -> float | None:
    vals = [t.diameters[tp] for t in tracks]
    return None if any(v is None for v in vals) else round(float(sum(vals)), 2)


def choose_targets(tracks: list[Track], user: list[str] | None = None) -> tuple[list[Track], list[tuple[Track, str]],
                                                                               list[tuple[Track, str]]]:
    """(targets, [(target, why)], [(non-target, why)]) among the lesions present at baseline."""
    base = [t for t in tracks if t.diameters and t.diameters[0]]
    if user is not None:
        known = {t.tracking_id for t in base}
        unknown = [u for u in user if u not in known]
        if unknown:
            raise ValueError(f"target lesions {unknown}: expected tracking ids of lesions present at baseline "
                             f"({sorted(known)})")
        tg = [t for t in base if t.tracking_id in user]
        return tg, [(t, "chosen by the user") for t in tg], [(t, "not chosen by the user") for t in base if t not in tg]
    targets, why_t, why_n = [], [], []
    per_organ: dict[str | None, int] = {}
    for t in sorted(base, key=lambda x: (-(x.diameters[0] or 0.0), x.tracking_id)):
        d = t.diameters[0]
        if t.lower_bound_at_baseline:
            why_n.append((t, f"reaches the scan edge at baseline: its {d:.1f} mm is a lower bound, not a measurement"))
        elif not t.measurable_at_baseline or d < MEASURABLE_MM:
            why_n.append((t, f"not measurable at baseline ({d:.1f} mm; {t.measurable_rule or 'long axis < 10 mm'})"))
        elif len(targets) >= MAX_TARGETS:
            why_n.append((t, f"measurable ({d:.1f} mm) but {MAX_TARGETS} larger targets were chosen already"))
        elif per_organ.get(t.organ, 0) >= MAX_PER_ORGAN:
            why_n.append((t, f"measurable ({d:.1f} mm) but {t.organ} has {MAX_PER_ORGAN} larger targets already"))
        else:
            targets.append(t)
            per_organ[t.organ] = per_organ.get(t.organ, 0) + 1
            why_t.append((t, (f"measurable ({d:.1f} mm >= {MEASURABLE_MM:.0f} mm, complete size), number "
                             f"{len(targets)} by size, {per_organ[t.organ]} of at most {MAX_PER_ORGAN} in "
                             f"{t.organ or 'no organ'}")))
    return targets, why_t, why_n


def assess(tracks: list[Track], n_time_points: int, user_targets: list[str] | None = None) -> Recist:
    cur = n_time_points - 1
    rules: list[RecistRule] = []
    targets, why_t, why_n = choose_targets(tracks, user_targets)
    non_targets = [t for t, _ in why_n]
    sums = [_sum(targets, tp) if targets else None for tp in range(n_time_points)]
    base_sum = sums[0]
    earlier = [(s, tp) for tp, s in enumerate(sums[:cur]) if s is not None]
    nadir, nadir_tp = min(earlier) if earlier else (None, None)
    cur_sum = sums[cur]
    pct = lambda a, b: None if a is None or b in (None, 0) else round(100.0 * (a - b) / b, 2)
    ch_base, ch_nadir = pct(cur_sum, base_sum), pct(cur_sum, nadir)
    d_nadir = None if cur_sum is None or nadir is None else round(cur_sum - nadir, 2)

    # target response
    if not targets:
        target = "not_applicable"
        rules.append(RecistRule(rule="no target lesions", text="no baseline lesion qualifies as a target "
                                "(measurable, complete size): response from non-target and new lesions (Table 2)"))
    else:
        ds = [t.diameters[cur] for t in targets]
        known = [d for d in ds if d is not None]
        part = float(sum(known))
        if ds and all(d == 0.0 for d in ds):
            target = "CR"
            rules.append(RecistRule(rule="CR: all targets disappeared",
                                    text=f"all {len(targets)} target lesions absent now (organs searched)"))
        elif nadir is not None and part - nadir >= PD_FRACTION * nadir and part - nadir >= PD_ABS_MM:
            target = "PD"
            rules.append(RecistRule(rule="PD: sum +20 % and +5 mm from nadir",
                                    text=f"sum of diameters {part:.1f} mm vs nadir {nadir:.1f} mm (time point "
                                         f"{nadir_tp}): +{part - nadir:.1f} mm (+{100 * (part - nadir) / nadir:.1f} %), "
                                         f">= 20 % and >= {PD_ABS_MM:.0f} mm"
                                         + ("" if len(known) == len(ds) else
                                            f" (with {len(ds) - len(known)} target(s) not assessable: at least this)")))
        elif len(known) < len(ds):
            target = "NE"
            rules.append(RecistRule(rule="NE: target not assessable",
                                    text=f"{len(ds) - len(known)} of {len(ds)} targets not assessable now; the "
                                         f"assessable ones ({part:.1f} mm) do not reach PD"))
        else:
            if nadir is not None and part > nadir:
                rules.append(RecistRule(rule="PD not met", text=(
                    f"sum {part:.1f} mm vs nadir {nadir:.1f} mm: +{part - nadir:.1f} mm (+{100 * (part - nadir) / nadir:.1f} %); "
                    f"PD needs both >= 20 % and >= {PD_ABS_MM:.0f} mm")))
            if base_sum and part <= (1 - PR_FRACTION) * base_sum:
                target = "PR"
                rules.append(RecistRule(rule="PR: sum -30 % from baseline",
                                        text=f"sum {part:.1f} mm vs baseline {base_sum:.1f} mm: "
                                             f"{100 * (part - base_sum) / base_sum:.1f} % (<= -30 %)"))
            else:
                target = "SD"
                rules.append(RecistRule(rule="SD: neither PR nor PD",
                                        text=f"sum {part:.1f} mm vs baseline {_fmt(base_sum)}"
                                             + (f" ({100 * (part - base_sum) / base_sum:+.1f} %)" if base_sum else "")
                                             + f", vs nadir {_fmt(nadir)}: neither -30 % from baseline nor "
                                               f"+20 % and +{PD_ABS_MM:.0f} mm from nadir"))

    # non-target response
    if not non_targets:
        non_target = "not_applicable"
    else:
        ds = [t.diameters[cur] for t in non_targets]
        if all(d == 0.0 for d in ds):
            non_target = "CR"
            rules.append(RecistRule(rule="non-target CR", text=f"all {len(ds)} non-target lesions absent now"))
        elif any(d is None for d in ds):
            non_target = "NE"
            rules.append(RecistRule(rule="non-target NE", text=f"{sum(d is None for d in ds)} of {len(ds)} "
                                                              "non-target lesions not assessable now"))
        else:
            non_target = "non-CR/non-PD"
            rules.append(RecistRule(rule="non-target non-CR/non-PD",
                                    text=f"{sum(d != 0.0 for d in ds)} of {len(ds)} non-target lesions persist; "
                                         "unequivocal progression of non-targets is a reader's judgement and is not "
                                         "called automatically"))

    # new lesions: present now, established absent at baseline
    new = [t.tracking_id for t in tracks
           if t.diameters[cur] and not t.diameters[0] and any(d == 0.0 for d in t.diameters[:cur])]
    for t in tracks:
        if t.tracking_id in new:
            rules.append(RecistRule(rule="new lesion -> PD", text=(
                f"{t.tracking_id} ({t.organ or 'no organ'}, {t.diameters[cur]:.1f} mm now) was not present at baseline and "
                "was absent from a searched, imaged organ before")))

    # overall response (RECIST 1.1 Tables 1 and 2)
    if new or target == "PD":
        overall = "PD"
    elif target == "not_applicable":
        overall = {"CR": "CR", "non-CR/non-PD": "non-CR/non-PD", "NE": "NE"}.get(non_target, "NE")
    elif target == "CR":
        overall = "CR" if non_target in ("CR", "not_applicable") else "PR"
    elif target == "PR":
        overall = "PR"
    elif target == "SD":
        overall = "SD"
    else:
        overall = "NE"
    rules.append(RecistRule(rule="overall response", text=(
        f"target {target}, non-target {non_target}, new lesions {'yes (' + ', '.join(new) + ')' if new else 'no'} "
        f"-> {overall} (RECIST 1.1 Table {'2' if target == 'not_applicable' else '1'})")))

    return Recist(
        baseline_time_point=0, targets_by="user" if user_targets is not None else "rules",
        targets=[RecistLesion(tracking_id=t.tracking_id, organ=t.organ, role="target", why=w, diameters_mm=t.diameters)
                 for t, w in why_t],
        non_targets=[RecistLesion(tracking_id=t.tracking_id, organ=t.organ, role="non_target", why=w,
                                  diameters_mm=t.diameters) for t, w in why_n],
        sum_of_diameters_mm=sums, baseline_sum_mm=base_sum, nadir_sum_mm=nadir, nadir_time_point=nadir_tp,
        current_sum_mm=cur_sum, change_from_baseline_pct=ch_base, change_from_nadir_pct=ch_nadir,
        change_from_nadir_mm=d_nadir, target_response=target, non_target_response=non_target, new_lesions=new,
        overall_response=overall, rules_fired=rules)
