// radagent web chat: the key image of each lesion beside a chat box.
// Plain script, no build step, no external resources. The token stays in memory and in this
// tab's sessionStorage; it is sent only in the Authorization header, never in a URL.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const state = { token: "", caseId: "", sessionId: null, imageUrls: [] };

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
        if (body && body.detail) {
          detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
        }
      } catch (e) { /* not JSON */ }
      const err = new Error(detail);
      err.status = resp.status;
      throw err;
    }
    return resp;
  }

  function clearImages() {
    state.imageUrls.forEach((u) => URL.revokeObjectURL(u));
    state.imageUrls = [];
    $("lesions").replaceChildren();
    $("case-summary").textContent = "";
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

  async function loadCase(caseId) {
    clearImages();
    state.caseId = caseId;
    state.sessionId = null;
    $("chat-log").replaceChildren();
    const info = await waitUntilAnalyzed(caseId);
    const lesions = await (await api("/cases/" + caseId + "/lesions")).json();
    $("case-summary").textContent = info.n_lesions + " lesion(s), " + info.n_organs + " organ(s)";
    for (const l of lesions) {
      const fig = document.createElement("figure");
      fig.dataset.lesion = l.id;
      const img = document.createElement("img");
      img.alt = "key image of " + l.id;
      const cap = document.createElement("figcaption");
      cap.textContent = l.id + " - " + (l.organ || "no organ") + " " + l.kind + ": " +
        l.long_axis_mm.toFixed(1) + " x " + l.short_axis_mm.toFixed(1) + " mm, " +
        l.volume_ml.toFixed(2) + " mL, " + (Math.round(l.mean_hu) || 0) + " HU";
      fig.append(img, cap);
      $("lesions").append(fig);
      if (l.key_image_url) {
        const blob = await (await api(l.key_image_url)).blob();
        const url = URL.createObjectURL(blob);
        state.imageUrls.push(url);
        img.src = url;
      }
    }
    if (!lesions.length) $("case-summary").textContent += " - no lesion to show";
    $("question").disabled = false;
    $("ask").disabled = false;
    setStatus("case " + caseId + " loaded");
  }

  function addMessage(kind, text) {
    const div = document.createElement("div");
    div.className = "msg " + kind;
    div.textContent = text;
    $("chat-log").append(div);
    $("chat-log").scrollTop = $("chat-log").scrollHeight;
    return div;
  }

  // Server-Sent Events over fetch (EventSource cannot send the Authorization header).
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
          const finalText = ev.text || ev.content || text;
          out.textContent = finalText;
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
  });
})();
