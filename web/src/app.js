// radagent reading page: a NiiVue CT viewer (axial / coronal / sagittal, window presets, organ and lesion
// overlays, RECIST axes on each lesion's key slice) beside the findings table, the report and the chat.
// Bundled by esbuild (web/package.json) into agent/web/app.js; no external resource is ever loaded.
// The token stays in memory and in this tab's sessionStorage; it is sent only in the Authorization header.
import { Niivue, SLICE_TYPE } from "@niivue/niivue";
import { fmt, lesionCells, organCells, reportSections } from "./findings.js";
import { inverseAffine, mulAffine } from "./geometry.js";

const $ = (id) => document.getElementById(id);
const VIEWS = { axial: SLICE_TYPE.AXIAL, coronal: SLICE_TYPE.CORONAL, sagittal: SLICE_TYPE.SAGITTAL,
  multiplanar: SLICE_TYPE.MULTIPLANAR };
const OPACITY = { organs: 0.3, lesions: 0.55 };
const LESION_RGB = [230, 40, 40];
const SELECTED_COLOUR = "#ffe600";
const AXES_RGB = { long: "#00ff66", short: "#ff33ff" }; // green long axis, magenta short axis

const state = {
  token: "", caseId: "", sessionId: null, findings: null, viewer: null, nv: null, inv: null,
  view: "multiplanar", preset: "abdomen", selected: null, slice: null, loaded: false, timings: {},
};
window.radagent = { state, sliceIndex, goToLesion, lesionCanvasBox, setView, setPreset };

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.classList.toggle("error", !!isError);
}

async function api(path, options) {
  const opts = Object.assign({}, options || {});
  opts.headers = Object.assign({ Authorization: "Bearer " + state.token }, opts.headers || {});
  const resp = await fetch(path, opts);
  if (!resp.ok) {
    let detail = resp.status + " " + resp.statusText;
    try {
      const body = await resp.json();
      if (body && body.detail) detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch (e) { /* not JSON */ }
    const err = new Error(detail);
    err.status = resp.status;
    throw err;
  }
  return resp;
}

async function waitUntilAnalyzed(caseId) {
  for (let i = 0; i < 600; i++) {
    const info = await (await api("/cases/" + caseId)).json();
    if (info.status === "done") return info;
    if (info.status === "failed") throw new Error(info.error || "analysis failed");
    setStatus("case " + caseId + ": " + info.status + " ...");
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error("the analysis is taking too long; try loading the case again later");
}

// --- geometry: the viewer's crosshair <-> voxel indices of the CT file (Findings' grid) ----------------
function crosshairVoxel() {
  const nv = state.nv;
  const mm = nv.frac2mm(nv.scene.crosshairPos);
  return mulAffine(state.inv, [mm[0], mm[1], mm[2]]);
}

function sliceIndex() {
  if (!state.loaded) return null;
  return Math.round(crosshairVoxel()[state.viewer.axial_axis]);
}

function moveToVoxel(vox) {
  const nv = state.nv;
  const mm = mulAffine(state.viewer.affine, vox);
  nv.scene.crosshairPos = nv.mm2frac(mm);
  nv.drawScene();
  nv.createOnLocationChange();
  syncSlice();
}

function setSlice(index) {
  const n = state.viewer.shape[state.viewer.axial_axis];
  const vox = crosshairVoxel();
  vox[state.viewer.axial_axis] = Math.max(0, Math.min(n - 1, index));
  moveToVoxel(vox);
}

function syncSlice() {
  const k = sliceIndex();
  if (k === null) return;
  state.slice = k;
  $("slice").value = String(k);
  const mm = state.nv.frac2mm(state.nv.scene.crosshairPos);
  const world = mulAffine(state.viewer.affine, crosshairVoxel());
  const keyOf = state.findings.lesions.filter((l) => l.key_slice && l.key_slice.index === k)
    .map((l) => l.id + " (image " + l.key_slice.image_number + ")");
  $("slice-text").textContent = "table position " + world[2].toFixed(1) + " mm" +
    (keyOf.length ? "; key slice of " + keyOf.join(", ") : "");
  $("stage").dataset.slice = String(k);
  void mm;
}

// --- RECIST axes: drawn on a 2D canvas over the viewer, on each lesion's key slice only -------------------
function fracOfVoxel(v) {
  return state.nv.mm2frac(mulAffine(state.viewer.affine, v));
}

function canvasPos(v) {
  const p = state.nv.frac2canvasPos(fracOfVoxel(v));
  return p ? [p[0], p[1]] : null;
}

// the lesion's in-plane extent (voxel edges of bbox_voxel) on axial slice k, in canvas pixels
function boxOnSlice(l, k) {
  const ax = state.viewer.axial_axis;
  const pts = [];
  const [b0, b1, b2] = l.bbox_voxel;
  for (const i of [b0[0] - 0.5, b0[1] - 0.5]) {
    for (const j of [b1[0] - 0.5, b1[1] - 0.5]) {
      for (const kk of [b2[0] - 0.5, b2[1] - 0.5]) {
        const v = [i, j, kk];
        v[ax] = k;
        const p = canvasAxial(v);
        if (p) pts.push(p);
      }
    }
  }
  if (!pts.length) return null;
  const xs = pts.map((p) => p[0]);
  const ys = pts.map((p) => p[1]);
  return { left: Math.min(...xs), top: Math.min(...ys), right: Math.max(...xs), bottom: Math.max(...ys) };
}

// the box in CSS pixels of the viewer (as a screenshot of #stage shows it), on the lesion's key slice
function lesionCanvasBox(id) {
  const l = state.findings.lesions.find((x) => x.id === id);
  if (!l || !state.loaded) return null;
  const b = boxOnSlice(l, l.axial_slice);
  if (!b) return null;
  const c = $("gl");
  const sx = c.clientWidth / c.width;
  const sy = c.clientHeight / c.height;
  return { left: b.left * sx, top: b.top * sy, right: b.right * sx, bottom: b.bottom * sy };
}

function drawAxes() {
  const gl = $("gl");
  const cv = $("axes");
  if (cv.width !== gl.width || cv.height !== gl.height) {
    cv.width = gl.width;
    cv.height = gl.height;
  }
  const ctx = cv.getContext("2d");
  ctx.clearRect(0, 0, cv.width, cv.height);
  if (!state.loaded || (state.view !== "axial" && state.view !== "multiplanar")) return;
  const k = sliceIndex();
  ctx.lineWidth = Math.max(2, cv.width / 400);
  const sel = state.findings.lesions.find((x) => x.id === state.selected);
  const ax = state.viewer.axial_axis;
  if (sel && k >= sel.bbox_voxel[ax][0] && k < sel.bbox_voxel[ax][1]) {
    // the selected lesion: a yellow frame around it on every slice it spans
    const b = boxOnSlice(sel, k);
    const pad = ctx.lineWidth * 2;
    if (b) {
      ctx.strokeStyle = SELECTED_COLOUR;
      ctx.strokeRect(b.left - pad, b.top - pad, b.right - b.left + 2 * pad, b.bottom - b.top + 2 * pad);
    }
  }
  for (const l of state.findings.lesions) {
    if (l.axial_slice !== k || !$("show-axes").checked) continue;
    for (const [which, ends] of [["long", l.long_axis_endpoints_voxel], ["short", l.short_axis_endpoints_voxel]]) {
      const a = canvasAxial(ends[0]);
      const b = canvasAxial(ends[1]);
      if (!a || !b) continue;
      ctx.strokeStyle = AXES_RGB[which];
      ctx.beginPath();
      ctx.moveTo(a[0], a[1]);
      ctx.lineTo(b[0], b[1]);
      ctx.stroke();
    }
  }
}

// frac2canvasPos picks the tile of the current slice type; in "all three" the axial tile is wanted
function canvasAxial(v) {
  const nv = state.nv;
  const frac = fracOfVoxel(v);
  if (state.view === "multiplanar" && nv.frac2canvasPosWithTile) {
    const r = nv.frac2canvasPosWithTile(frac, SLICE_TYPE.AXIAL);
    return r && r.pos ? [r.pos[0], r.pos[1]] : null;
  }
  const p = nv.frac2canvasPos(frac);
  return p ? [p[0], p[1]] : null;
}

// --- label colours ----------------------------------------------------------------------------------
function labelColormap(n, rgbOf, names) {
  const cm = { R: [0], G: [0], B: [0], A: [0], I: [0], labels: [""] };
  for (let i = 1; i <= n; i++) {
    const [r, g, b] = rgbOf(i);
    cm.R.push(r); cm.G.push(g); cm.B.push(b); cm.A.push(255); cm.I.push(i); cm.labels.push(names[i - 1] || "");
  }
  return cm;
}

function organRgb(i) {
  const h = (i * 137.508) % 360; // golden-angle hues, distinct for neighbouring labels
  const s = 0.55, v = 0.85;
  const f = (n) => {
    const k = (n + h / 60) % 6;
    return Math.round(255 * (v - v * s * Math.max(0, Math.min(k, 4 - k, 1))));
  };
  return [f(5), f(3), f(1)];
}

// every lesion red (set at load); the selected one is framed on the 2D canvas: recolouring the label
// volume would redo every layer on the GPU, seconds for a 512 x 512 x 300 CT under a software renderer

function setView(name) {
  state.view = name;
  state.nv.setSliceType(VIEWS[name]);
  for (const b of document.querySelectorAll("button.view")) b.setAttribute("aria-pressed", String(b.dataset.view === name));
  drawAxes();
}

function setPreset(name) {
  const [w, l] = state.viewer.windows[name];
  const ct = state.nv.volumes[0];
  ct.cal_min = l - w / 2;
  ct.cal_max = l + w / 2;
  state.preset = name;
  state.nv.updateGLVolume();
  for (const b of document.querySelectorAll("button.preset")) b.setAttribute("aria-pressed", String(b.dataset.preset === name));
}

function applyOverlays() {
  if (!state.loaded) return;
  state.nv.setOpacity(1, $("show-organs").checked ? OPACITY.organs : 0);
  state.nv.setOpacity(2, $("show-lesions").checked ? OPACITY.lesions : 0);
  drawAxes();
}

function goToLesion(id) {
  const l = state.findings.lesions.find((x) => x.id === id);
  if (!l || !state.loaded) return false;
  state.selected = id;
  const [a, b] = l.long_axis_endpoints_voxel;
  const mid = [0, 1, 2].map((i) => (a[i] + b[i]) / 2);
  mid[state.viewer.axial_axis] = l.axial_slice;
  moveToVoxel(mid);
  for (const tr of document.querySelectorAll("#lesion-table tbody tr")) {
    tr.setAttribute("aria-selected", String(tr.dataset.lesion === id));
  }
  for (const s of document.querySelectorAll("[data-findings]")) {
    s.classList.toggle("cited", s.dataset.findings.split(" ").includes(id));
  }
  return true;
}

// --- page parts -------------------------------------------------------------------------------------------
function activate(el, fn) {
  el.tabIndex = 0;
  el.addEventListener("click", fn);
  el.addEventListener("keydown", (e) => {
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      fn();
    }
  });
}

function renderTables(f) {
  const lt = $("lesion-table").querySelector("tbody");
  lt.replaceChildren();
  for (const l of f.lesions) {
    const tr = document.createElement("tr");
    tr.dataset.lesion = l.id;
    tr.setAttribute("aria-selected", "false");
    tr.setAttribute("role", "button");
    tr.setAttribute("aria-label", "show lesion " + l.id + " on its key slice");
    for (const text of lesionCells(l)) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    activate(tr, () => goToLesion(l.id));
    lt.append(tr);
  }
  const ot = $("organ-table").querySelector("tbody");
  ot.replaceChildren();
  for (const o of f.organs) {
    const tr = document.createElement("tr");
    tr.dataset.organ = o.name;
    for (const text of organCells(o, f.lesion_search || [])) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.append(td);
    }
    ot.append(tr);
  }
  $("case-summary").textContent = f.lesions.length + " lesion(s), " + f.organs.length + " organ(s)" +
    (f.lesions.length ? "" : " - no lesion to show");
}

function citedLesion(ids) {
  const lesionIds = new Set(state.findings.lesions.map((l) => l.id));
  return ids.find((x) => lesionIds.has(x)) || null;
}

function renderReport(draft) {
  const body = $("report-body");
  body.replaceChildren();
  for (const sec of reportSections(draft)) {
    const h = document.createElement("h3");
    h.textContent = sec.title;
    body.append(h);
    for (const para of sec.paragraphs) {
      const p = document.createElement("p");
      for (const s of para) {
        const span = document.createElement("span");
        span.className = "sentence";
        span.textContent = s.text;
        span.dataset.findings = s.finding_ids.join(" ");
        const target = citedLesion(s.finding_ids);
        if (target) {
          span.classList.add("link");
          span.setAttribute("role", "button");
          span.dataset.lesion = target;
          span.title = "show " + target + " on its key slice";
          activate(span, () => goToLesion(target));
        }
        p.append(span, " ");
      }
      body.append(p);
    }
  }
  if (draft.fallback_reason) {
    const p = document.createElement("p");
    p.className = "note";
    p.textContent = "Template narrative used: " + draft.fallback_reason;
    body.append(p);
  }
}

async function loadViewer(caseId) {
  const t0 = performance.now();
  const v = await (await api("/cases/" + caseId + "/viewer")).json();
  state.viewer = v;
  state.inv = inverseAffine(v.affine);
  if (!state.nv) {
    state.nv = new Niivue({
      isRadiologicalConvention: true, backColor: [0, 0, 0, 1], show3Dcrosshair: false, crosshairColor: [0.3, 0.55, 1, 0.5], crosshairWidth: 0.5, crosshairGap: 12,
      loadingText: "loading the CT ...", isOrientationTextVisible: true, isResizeCanvas: true,
    });
    await state.nv.attachToCanvas($("gl"));
    const draw = state.nv.drawScene.bind(state.nv);
    state.nv.drawScene = () => {
      const r = draw();
      drawAxes();
      return r;
    };
    state.nv.onLocationChange = () => syncSlice();
  }
  const headers = { Authorization: "Bearer " + state.token };
  const [w, l] = v.windows[state.preset];
  state.timings.viewer_info_ms = performance.now() - t0;
  await state.nv.loadVolumes([
    { url: v.volumes.ct, headers, name: "ct.nii.gz", colormap: "gray", cal_min: l - w / 2, cal_max: l + w / 2,
      trustCalMinMax: true },
    { url: v.volumes.organs, headers, name: "organs.nii.gz", opacity: $("show-organs").checked ? OPACITY.organs : 0 },
    { url: v.volumes.lesions, headers, name: "lesions.nii.gz", opacity: $("show-lesions").checked ? OPACITY.lesions : 0 },
  ]);
  state.timings.decoded_ms = performance.now() - t0;
  // label colours: organs by hue, every lesion red; one more pass over the layers
  state.nv.volumes[1].setColormapLabel(labelColormap(v.organs.length, organRgb, v.organs.map((o) => o.name)));
  state.nv.volumes[2].setColormapLabel(labelColormap(v.lesions.length, () => LESION_RGB, v.lesions.map((x) => x.id)));
  state.nv.updateGLVolume();
  state.timings.volumes_ms = performance.now() - t0;
  state.loaded = true;
  setView(state.view);
  for (const b of document.querySelectorAll("button.preset")) b.setAttribute("aria-pressed", String(b.dataset.preset === state.preset));
  const n = v.shape[v.axial_axis];
  $("slice").max = String(n - 1);
  $("slice").disabled = false;
  syncSlice();
  state.nv.drawScene();
  state.timings.viewer_ms = performance.now() - t0;
}

async function loadCase(caseId) {
  state.caseId = caseId;
  state.sessionId = null;
  state.loaded = false;
  state.selected = null;
  $("chat-log").replaceChildren();
  $("report-body").replaceChildren();
  const info = await waitUntilAnalyzed(caseId);
  const f = await (await api("/cases/" + caseId + "/findings")).json();
  state.findings = f;
  renderTables(f);
  void info;
  $("question").disabled = false;
  $("ask").disabled = false;
  setStatus("loading the images of case " + caseId + " ...");
  const report = api("/cases/" + caseId + "/report?format=json").then((r) => r.json()).then(renderReport)
    .catch((err) => { $("report-body").textContent = "The report could not be drafted: " + err.message; });
  await loadViewer(caseId);
  setStatus("case " + caseId + " loaded");
  await report;
  $("report-body").dataset.ready = "1";
}

// --- chat (Server-Sent Events over fetch: EventSource cannot send the Authorization header) --------------
function addMessage(kind, text) {
  const div = document.createElement("div");
  div.className = "msg " + kind;
  div.textContent = text;
  $("chat-log").append(div);
  $("chat-log").scrollTop = $("chat-log").scrollHeight;
  return div;
}

function linkCited(out, ids) {
  const lesions = (ids || []).filter((x) => state.findings.lesions.some((l) => l.id === x));
  if (!lesions.length) return;
  const p = document.createElement("p");
  p.className = "cited-links";
  p.append("Cited: ");
  for (const id of [...new Set(lesions)]) {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "cite";
    b.dataset.lesion = id;
    b.textContent = id;
    b.setAttribute("aria-label", "show " + id + " on its key slice");
    b.addEventListener("click", () => goToLesion(id));
    p.append(b, " ");
  }
  out.append(p);
}

async function chat(message) {
  addMessage("question", message);
  const out = addMessage("answer", "");
  out.dataset.final = "0";
  const resp = await api("/cases/" + state.caseId + "/chat", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ message: message, session_id: state.sessionId }),
  });
  const reader = resp.body.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buf.indexOf("\n\n")) >= 0) {
      const block = buf.slice(0, cut);
      buf = buf.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (!data.length) continue;
      const ev = JSON.parse(data.join("\n"));
      if (event === "session") {
        state.sessionId = ev.session_id;
      } else if (event === "token") {
        text += ev.text || ev.content || ev.delta || "";
        out.textContent = text;
      } else if (event === "final") {
        out.textContent = ev.text || ev.content || text;
        const ids = ev.finding_ids || (ev.answer && ev.answer.finding_ids) || [];
        out.dataset.findings = ids.join(" ");
        linkCited(out, ids);
        out.dataset.final = "1";
      } else if (event === "error") {
        out.className = "msg error";
        out.textContent = ev.detail || "chat failed";
        out.dataset.final = "1";
      }
      $("chat-log").scrollTop = $("chat-log").scrollHeight;
    }
  }
  if (out.dataset.final !== "1") {
    out.className = "msg error";
    out.textContent = (text ? text + "\n" : "") + "(the answer stream ended early)";
    out.dataset.final = "1";
  }
}

function readToken() {
  state.token = $("token").value.trim();
  if (!state.token) throw new Error("enter the API token first");
  sessionStorage.setItem("radagent-token", state.token);
}

document.addEventListener("DOMContentLoaded", () => {
  const saved = sessionStorage.getItem("radagent-token");
  if (saved) $("token").value = saved;

  $("connect").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      readToken();
      const caseId = $("case-id").value.trim();
      if (!/^[0-9a-f]{32}$/.test(caseId)) throw new Error("a case id is 32 lowercase hex characters");
      setStatus("loading case " + caseId + " ...");
      await loadCase(caseId);
    } catch (err) {
      setStatus(err.message, true);
    }
  });

  $("upload").addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      readToken();
      const form = new FormData();
      form.append("ct", $("ct-file").files[0]);
      form.append("masks", $("masks-file").files[0]);
      setStatus("uploading ...");
      const info = await (await api("/cases", { method: "POST", body: form })).json();
      $("case-id").value = info.id;
      await loadCase(info.id);
    } catch (err) {
      setStatus(err.message, true);
    }
  });

  $("ask-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    const q = $("question").value.trim();
    if (!q || !state.caseId) return;
    $("question").value = "";
    $("ask").disabled = true;
    try {
      await chat(q);
    } catch (err) {
      addMessage("error", err.message);
    } finally {
      $("ask").disabled = false;
      $("question").focus();
    }
  });

  for (const b of document.querySelectorAll("button.view")) b.addEventListener("click", () => state.loaded && setView(b.dataset.view));
  for (const b of document.querySelectorAll("button.preset")) {
    b.addEventListener("click", () => state.loaded && setPreset(b.dataset.preset));
  }
  for (const id of ["show-organs", "show-lesions", "show-axes"]) $(id).addEventListener("change", applyOverlays);
  $("slice").addEventListener("input", () => state.loaded && setSlice(Number($("slice").value)));
  $("stage").addEventListener("keydown", (e) => {
    if (!state.loaded) return;
    const step = { ArrowUp: 1, ArrowDown: -1, PageUp: 10, PageDown: -10 }[e.key];
    if (step === undefined) return;
    e.preventDefault();
    setSlice(sliceIndex() + step);
  });
  window.addEventListener("resize", () => state.loaded && drawAxes());
});

export { fmt };
