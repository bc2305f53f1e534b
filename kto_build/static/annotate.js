// kto-build local annotator: one record at a time, each answer saved at once.
"use strict";
const $ = (id) => document.getElementById(id);
let info = null, record = null, busy = false, back = false;
let me = localStorage.getItem("kto-build-annotator") || "";

function show(section) {
  for (const id of ["who", "rate", "done"]) $(id).hidden = id !== section;
}

function error(msg) {
  $("error").textContent = msg || "";
  $("error").hidden = !msg;
}

function progress(p) {
  const parts = [];
  if (me) parts.push(`${p.mine} rated by you`, `${p.pending_for_me} left for you`);
  if (me && p.skipped) parts.push(`${p.skipped} skipped`);
  parts.push(`${p.completed} of ${p.total} records complete`);
  $("progress").textContent = parts.join(" · ");
}

async function call(url, options) {
  const r = await fetch(url, options);
  const data = await r.json();
  if (!r.ok) throw new Error(data.error || r.statusText);
  return data;
}

function render(data) {
  progress(data.progress);
  record = data.record;
  if (!me) return show("who");
  if (!record) return show("done");
  $("me").textContent = me;
  $("prompt").textContent = record.prompt;
  $("completion").textContent = record.completion;
  $("meta").textContent = Object.entries(record.metadata).map(([k, v]) => `${k}: ${v}`).join(" · ");
  // a record shown again: by "back" (your answer, to change) or a skipped one at the end
  const mine = record.mine;
  $("again").textContent = !mine ? "" : mine.status === "submitted"
    ? `Your answer: ${mine.value}. Choose again to change it.` : "You skipped this one before.";
  for (const b of document.querySelectorAll("#labels button"))
    b.classList.toggle("chosen", !!mine && mine.status === "submitted" && b.dataset.value === mine.value);
  show("rate");
  suggest(record.suggestion);
}

// a judge's verdict: shown pre-selected (focused: Enter accepts it) and marked as a model's;
// nothing is saved until the person clicks or presses a key
function suggest(s) {
  let target = null;
  for (const b of document.querySelectorAll("#labels button")) {
    const on = !!s && b.dataset.value === s.value;
    b.classList.toggle("suggested", on);
    if (on) target = b;
  }
  const note = $("suggestion");
  note.hidden = !s;
  note.textContent = !s ? "" : `Model suggestion: ${s.value} (${s.agent}` +
    (s.score === null || s.score === undefined ? "" : `, score ${Number(s.score).toFixed(2)}`) +
    "). Not saved until you choose: Enter or click accepts it, or pick another label.";
  if (target) target.focus();
  else if (document.activeElement && document.activeElement.closest("#labels")) document.activeElement.blur();
}

async function load() {
  try { render(await call("/api/next?annotator=" + encodeURIComponent(me))); error(""); }
  catch (e) { error(e.message); }
}

async function answer(value, status) {
  if (!record || busy) return;
  busy = true;
  try {
    const body = { record_id: record.id, annotator: me, value, status };
    back = false;
    render(await call("/api/answer", { method: "POST", headers: { "Content-Type": "application/json" },
                                        body: JSON.stringify(body) }));
    error("");
  } catch (e) {
    error("Not saved: " + e.message + " (press the button again to retry)");
  } finally { busy = false; }
}

async function previous() {
  if (busy || !me) return;
  busy = true;
  try {
    const before = back && record ? "&before=" + encodeURIComponent(record.id) : "";
    const data = await call("/api/previous?annotator=" + encodeURIComponent(me) + before);
    if (data.record) { back = true; render(data); }
    error(data.record ? "" : "Nothing earlier to go back to.");
  } catch (e) { error(e.message); } finally { busy = false; }
}

async function start() {
  info = await call("/api/info");
  document.title = `${info.node} · kto-build annotate`;
  $("node").textContent = info.node;
  $("project").textContent = info.project;
  $("title").textContent = info.title;
  $("guidelines").textContent = info.guidelines || "";
  $("guidelines-start").textContent = info.guidelines || "";
  const keys = [];
  info.labels.forEach((label, i) => {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.value = label;
    b.append(label + " ");
    const k = document.createElement("kbd");
    k.textContent = String(i + 1);
    b.append(k);
    const tag = document.createElement("small");
    tag.className = "tag";
    tag.textContent = "model suggestion";
    b.append(tag);
    b.addEventListener("click", () => answer(label, "submitted"));
    $("labels").append(b);
    keys.push(`${i + 1} ${label}`);
  });
  $("keys").textContent = keys.join(", ");
  $("name").value = me;
  await load();
}

$("who").addEventListener("submit", (ev) => {
  ev.preventDefault();
  me = $("name").value.trim();
  if (!me) return;
  localStorage.setItem("kto-build-annotator", me);
  load();
});
$("switch").addEventListener("click", (ev) => {
  ev.preventDefault();
  me = "";
  localStorage.removeItem("kto-build-annotator");
  show("who");
  $("name").focus();
});
$("skip").addEventListener("click", () => answer(null, "discarded"));
$("back").addEventListener("click", () => previous());
$("back-done").addEventListener("click", () => previous());
document.addEventListener("keydown", (ev) => {
  if (!$("done").hidden && (ev.key === "u" || ev.key === "U")) { ev.preventDefault(); previous(); return; }
  if ($("rate").hidden || ev.target.tagName === "INPUT" || ev.ctrlKey || ev.metaKey || ev.altKey) return;
  const n = parseInt(ev.key, 10);
  if (info && n >= 1 && n <= info.labels.length) { ev.preventDefault(); answer(info.labels[n - 1], "submitted"); }
  else if (ev.key === "s" || ev.key === "S") { ev.preventDefault(); answer(null, "discarded"); }
  else if (ev.key === "Backspace" || ev.key === "u" || ev.key === "U") { ev.preventDefault(); previous(); }
});
start().catch((e) => error(e.message));
