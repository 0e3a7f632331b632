// Findings -> table cells and report sections. Only what findings.json says; what it leaves unknown is
// said to be unknown, with its reason when the file gives one.

export function fmt(x, digits) {
  return x === null || x === undefined ? "unknown" : Number(x).toFixed(digits);
}

const words = (s) => String(s).replace(/_/g, " ");

export function lesionCells(l) {
  const where = [l.organ ? words(l.organ) : "no host organ"];
  if (l.segments && l.segments.length) where.push(l.segments.map(words).join(", "));
  if (l.kidney_pole) where.push(l.kidney_pole + " pole");
  const bound = l.size_qualifier === "lower_bound" ? "at least " : "";
  const size = bound + fmt(l.long_axis_mm, 1) + " x " + fmt(l.short_axis_mm, 1) + " mm, " + bound +
    fmt(l.volume_ml, 2) + " mL";
  const att = l.attenuation
    ? (l.attenuation_term || l.attenuation) + " (" + fmt(l.mean_hu, 0) + " HU)"
    : "not determined" + (l.attenuation_reason ? ": " + l.attenuation_reason : "") + " (" + fmt(l.mean_hu, 0) + " HU)";
  const touching = (l.vessel_contacts || []).filter((c) => c.category !== "none");
  let vessels;
  if (!(l.vessel_contacts || []).length) vessels = "not measured (no vessel mask near the lesion)";
  else if (!touching.length) vessels = "no contact with " + l.vessel_contacts.map((c) => words(c.vessel)).join(", ");
  else vessels = touching.map((c) => words(c.vessel) + " " + c.category + " " + fmt(c.max_angle_deg, 0) + " deg").join("; ");
  const coverage = l.size_qualifier === "lower_bound"
    ? "reaches the scan edge (" + (l.touches_edges || []).join(", ") + "): sizes are lower bounds"
    : "complete";
  return [l.id + " " + l.kind, where.join(", "), size, att, vessels, coverage];
}

export function organCells(o, searches) {
  const s = searches.find((x) => x.organ === o.name);
  const search = !s ? "not recorded" : s.searched ? "searched by " + s.by.join(", ") : "not searched: " + (s.reason || "");
  const volume = o.volume_ml !== null && o.volume_ml !== undefined ? fmt(o.volume_ml, 1) + " mL"
    : o.status === "truncated_by_fov" ? "not measured (cut by the scan edge)" : "not measured";
  return [words(o.name), words(o.status), volume, fmt(o.mean_hu, 0), search];
}

const TITLES = { technique: "Technique", findings: "Findings", impression: "Impression", limitations: "Limitations" };

// sections in report order, each a list of paragraphs (consecutive sentences of one organ group)
export function reportSections(draft) {
  const out = [];
  for (const s of draft.sentences) {
    let sec = out[out.length - 1];
    if (!sec || sec.key !== s.section) {
      sec = { key: s.section, title: TITLES[s.section] || s.section, paragraphs: [], group: null };
      out.push(sec);
    }
    if (!sec.paragraphs.length || sec.group !== s.group || s.section !== "findings") {
      if (!sec.paragraphs.length || sec.group !== s.group) sec.paragraphs.push([]);
    }
    sec.group = s.group;
    sec.paragraphs[sec.paragraphs.length - 1].push(s);
  }
  return out;
}
