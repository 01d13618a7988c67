// tokensearch viewer: search, result cards with hit boxes, page viewer with zoom/pan and heatmaps.
// Plain JS, no dependencies, works offline. Talks only to this server's /api/v1.
"use strict";

const API = "/api/v1";
const PAGE_SIZE = 24;
const $ = (id) => document.getElementById(id);

const state = {
  auth: false,             // server wants an API key
  key: localStorage.getItem("tokensearch.key") || "",
  q: "",
  hits: [],
  total: 0,
  selected: -1,            // selected card (grid) / current hit (viewer)
  view: null,              // {docId, page, pages, name, hit}
  docs: new Map(),         // doc_id -> document (cache)
  heat: { on: false, token: -1, data: null, key: "" },
  xf: { s: 1, x: 0, y: 0 }, // page transform in the stage
  fitScale: 1,              // scale at which the whole page fits: shown as 100%
  searchSeq: 0,
  filters: {},             // the search filters (API names -> values), also in the URL
};

// search filters: the API's parameter names, and the viewer's URL names (doc= is the page being viewed)
const FILTERS = { path: "path", type: "type", modified_after: "modified_after", modified_before: "modified_before", doc: "in_doc" };
const FILTER_INPUTS = { path: "f-path", type: "f-type", modified_after: "f-after", modified_before: "f-before", doc: "f-doc" };

// ---------------------------------------------------------------------------------------------- API

class ApiError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

async function api(path, opts = {}) {
  const headers = new Headers(opts.headers || {});
  if (state.key) headers.set("X-API-Key", state.key);
  let res;
  try {
    res = await fetch(path, { ...opts, headers });
  } catch (e) {
    throw new ApiError(0, "network", "cannot reach the server — is `tokensearch serve` running?");
  }
  if (!res.ok) {
    let code = "http_" + res.status, message = res.statusText;
    try { const j = await res.json(); code = j.error.code; message = j.error.message; } catch (_) { /* not JSON */ }
    if (res.status === 401 || res.status === 403) askKey(message);
    throw new ApiError(res.status, code, message);
  }
  return res;
}
const getJSON = async (path) => (await api(path)).json();

// Images: plain URLs when no key is needed (browser cache); fetched blobs when a header must be sent.
const blobCache = new Map();
async function imageSrc(url) {
  if (!state.auth) return url;
  if (blobCache.has(url)) return blobCache.get(url);
  const blob = await (await api(url)).blob();
  const src = URL.createObjectURL(blob);
  blobCache.set(url, src);
  return src;
}

// ---------------------------------------------------------------------------------------------- UI helpers

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c != null) e.append(c);
  return e;
}

function showBanner(msg) { const b = $("banner"); b.textContent = msg; b.hidden = !msg; }

let toastTimer = 0;
function toast(msg, ms = 3500) {
  const t = $("toast"); t.textContent = msg; t.hidden = false;
  clearTimeout(toastTimer);
  if (ms) toastTimer = setTimeout(() => { t.hidden = true; }, ms);
}

function drawBoxes(container, boxes) {
  container.replaceChildren();
  for (const [x0, y0, x1, y1] of boxes) {
    const b = el("div", { class: "box" });
    b.style.left = `${x0 * 100}%`; b.style.top = `${y0 * 100}%`;
    b.style.width = `${(x1 - x0) * 100}%`; b.style.height = `${(y1 - y0) * 100}%`;
    container.append(b);
  }
}

function setStates({ welcome = false, empty = false, emptyIndex = false } = {}) {
  $("welcome").hidden = !welcome; $("empty").hidden = !empty; $("empty-index").hidden = !emptyIndex;
  $("recent-wrap").hidden = !welcome;
}

// ---------------------------------------------------------------------------------------------- search

function readFilters() {
  const f = {};
  for (const [name, id] of Object.entries(FILTER_INPUTS)) { const v = $(id).value.trim(); if (v) f[name] = v; }
  return f;
}

function showFilters(f) {
  for (const [name, id] of Object.entries(FILTER_INPUTS)) $(id).value = f[name] || "";
  const on = Object.keys(f).length > 0;
  $("filters").classList.toggle("active", on); $("f-clear").hidden = !on;
}

const sameFilters = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function urlFor(q, view) {
  const p = new URLSearchParams();
  if (q) p.set("q", q);
  for (const [name, key] of Object.entries(FILTERS)) if (state.filters[name]) p.set(key, state.filters[name]);
  if (view) { p.set("doc", view.docId); p.set("page", view.page); }
  const s = p.toString();
  return s ? `/?${s}` : "/";
}

// typed: what the search box and filter fields hold is the user's, not this search's (see route's start-up)
async function search(q, { push = true, filters = readFilters(), typed = false } = {}) {
  q = q.trim();
  state.q = q; if (!typed) $("q").value = q;
  state.filters = filters; if (!typed) showFilters(filters);
  if (push) history.pushState({}, "", urlFor(q, null));
  document.title = q ? `${q} — tokensearch` : "tokensearch";
  state.hits = []; state.total = 0; state.selected = -1;
  $("results").replaceChildren(); $("more").hidden = true; $("summary").hidden = true;
  showBanner("");
  if (!q) { await showWelcome(); return; }
  setStates();
  await loadMore();
}

async function loadMore() {
  const seq = ++state.searchSeq;
  const q = state.q, offset = state.hits.length;
  $("more").disabled = true;
  try {
    const r = await getJSON(`${API}/search?${new URLSearchParams({ q, k: PAGE_SIZE, offset, ...state.filters })}`);
    if (seq !== state.searchSeq) return;   // a newer search started meanwhile
    state.total = r.total;
    const start = state.hits.length;
    state.hits.push(...r.hits);
    r.hits.forEach((h, i) => $("results").append(card(h, start + i)));
    const n = state.total;
    $("summary").textContent = n ? `${n} page${n === 1 ? "" : "s"} · ${Math.round(r.took_ms)} ms` : "";
    $("summary").hidden = !n;
    $("more").hidden = state.hits.length >= state.total || r.hits.length === 0;
    if (!state.hits.length) { $("empty-q").textContent = q; setStates({ empty: true }); }
  } catch (e) {
    if (seq === state.searchSeq) showBanner(e.message);
  } finally {
    $("more").disabled = false;
  }
}

function card(hit, i) {
  const img = el("img", { alt: `${hit.name}, page ${hit.page}`, loading: "lazy" });
  const boxes = el("div", { class: "boxes" });
  drawBoxes(boxes, hit.boxes);
  const thumb = el("div", { class: "thumb loading" }, img, boxes);
  if (hit.width > 0 && hit.height > 0) img.style.aspectRatio = `${hit.width} / ${hit.height}`;
  img.addEventListener("load", () => thumb.classList.remove("loading"));
  const noImage = () => { thumb.classList.remove("loading"); thumb.classList.add("noimg"); };
  img.addEventListener("error", noImage);
  imageSrc(hit.thumbnail_url).then((src) => { img.src = src; }).catch(noImage);
  const snip = snippet(hit);
  const dir = hit.path.slice(0, Math.max(0, hit.path.length - hit.name.length));
  const bar = el("div", { class: "scorebar" }, el("i"));
  bar.firstChild.style.width = `${Math.max(4, Math.min(1, hit.score) * 100)}%`;
  const li = el("li", { class: "card", tabindex: "0", "data-index": String(i), title: hit.path },
    thumb,
    snip,
    el("div", { class: "meta" },
      el("span", { class: "name", text: hit.name }),
      el("div", { class: "line" }, el("span", { text: `page ${hit.page}` }),
        el("span", { class: "score", text: `score ${hit.score.toFixed(2)}` })),
      facts(hit),
      el("span", { class: "muted small path", text: dir }),
      bar));
  li.addEventListener("click", (e) => { if (!e.target.closest("a")) openHit(i); });
  li.addEventListener("keydown", (e) => { if (e.key === "Enter") openHit(i); });
  return li;
}

// what the engine read there, the document's size and date, and its original file at this page
function facts(hit) {
  const parts = [];
  if (hit.text) parts.push(el("span", { class: "read", title: "what the engine read where the query matched", text: hit.text }));
  if (hit.pages) parts.push(el("span", { class: "muted small pages", text: `${hit.pages} page${hit.pages === 1 ? "" : "s"}` }));
  if (hit.modified) parts.push(el("span", { class: "muted small modified", title: `modified ${hit.modified}`, text: hit.modified.slice(0, 10) }));
  if (hit.file_url) parts.push(fileLink(hit.file_url, "open file"));
  return el("div", { class: "facts" }, ...parts);
}

// a link to an original file; with an API key the file is fetched (the header) and opened as a blob
function fileLink(url, label, a = el("a", {})) {
  a.className = "file"; a.textContent = label; a.href = url; a.target = "_blank"; a.rel = "noopener";
  a.onclick = async (e) => {
    e.stopPropagation();
    if (!state.auth) return;
    e.preventDefault();
    const [path, frag] = url.split("#");
    try {
      const blob = await (await api(path)).blob();
      window.open(URL.createObjectURL(blob) + (frag ? `#${frag}` : ""), "_blank", "noopener");
    } catch (err) { toast(err.message, 6000); }
  };
  return a;
}

// a close-up strip of the page centred on the first hit box (pure CSS: the page is scaled so the box fits
// the strip, then translated by its own size so the box centre lands in the middle)
function snippet(hit) {
  if (!hit.boxes.length || !(hit.width > 0)) return null;
  const [x0, y0, x1, y1] = hit.boxes[0];
  const aspect = hit.height / hit.width, stripH = 56;
  const page = el("div", { class: "snip-page" });
  page.style.width = `min(${(0.8 / Math.max(x1 - x0, 1e-3)) * 100}%, ${(0.55 * stripH) / Math.max((y1 - y0) * aspect, 1e-4)}px)`;
  page.style.transform = `translate(${-(x0 + x1) / 2 * 100}%, ${-(y0 + y1) / 2 * 100}%)`;
  const img = el("img", { alt: "", loading: "lazy" });
  img.style.aspectRatio = `${hit.width} / ${hit.height}`;
  const boxes = el("div", { class: "boxes" });
  drawBoxes(boxes, hit.boxes);
  page.append(img, boxes);
  const strip = el("div", { class: "snippet", "aria-hidden": "true" }, page);
  imageSrc(`${API}/pages/${hit.doc_id}/${hit.page}/image?width=1280&format=webp`)
    .then((src) => { img.src = src; }).catch(() => strip.remove());
  return strip;
}

function selectCard(i) {
  const cards = $("results").children;
  if (!cards.length) return;
  i = Math.max(0, Math.min(cards.length - 1, i));
  if (state.selected >= 0 && cards[state.selected]) cards[state.selected].classList.remove("selected");
  state.selected = i;
  cards[i].classList.add("selected");
  cards[i].focus({ preventScroll: true });
  cards[i].scrollIntoView({ block: "nearest", behavior: "smooth" });
}

async function showWelcome() {
  setStates({ welcome: true });
  $("recent").replaceChildren();
  try {
    const h = await getJSON("/healthz");
    if (h.documents === 0) { setStates({ emptyIndex: true }); return; }
    $("welcome-stats").textContent = h.documents != null ? `${h.documents} documents · ${h.pages} pages indexed` : "";
    const docs = await getJSON(`${API}/documents?${new URLSearchParams({ status: "ok", limit: 12 })}`);
    $("recent-title").hidden = !docs.items.length;
    for (const d of docs.items) $("recent").append(docCard(d));
  } catch (e) { showBanner(e.message); }
}

// a document on the welcome screen: its first page; click to browse it
function docCard(d) {
  const img = el("img", { alt: `${d.name}, page 1`, loading: "lazy" });
  const thumb = el("div", { class: "thumb loading" }, img);
  const first = (d.page_list || [])[0];
  if (first && first.width > 0) img.style.aspectRatio = `${first.width} / ${first.height}`;
  img.addEventListener("load", () => thumb.classList.remove("loading"));
  const noImage = () => { thumb.classList.remove("loading"); thumb.classList.add("noimg"); };
  img.addEventListener("error", noImage);
  if (d.thumbnail_url) imageSrc(d.thumbnail_url).then((src) => { img.src = src; }).catch(noImage); else noImage();
  const li = el("li", { class: "card", tabindex: "0", title: d.path },
    thumb,
    el("div", { class: "meta" },
      el("span", { class: "name", text: d.name }),
      el("div", { class: "line" }, el("span", { text: `${d.pages} page${d.pages === 1 ? "" : "s"}` }))));
  const open = () => openPage(d.id, 1);
  li.addEventListener("click", open);
  li.addEventListener("keydown", (e) => { if (e.key === "Enter") open(); });
  return li;
}

// ---------------------------------------------------------------------------------------------- viewer

async function documentInfo(docId) {
  if (!state.docs.has(docId)) state.docs.set(docId, await getJSON(`${API}/documents/${docId}`));
  return state.docs.get(docId);
}

function openHit(i) {
  const h = state.hits[i];
  if (!h) return;
  state.selected = i;
  openPage(h.doc_id, h.page, { hit: i });
}

async function openPage(docId, page, { hit = null, push = true } = {}) {
  const wasOpen = !$("viewer").hidden;
  $("viewer").hidden = false;
  document.body.style.overflow = "hidden";
  state.view = { docId, page, hit, pages: null, name: "" };
  if (push) history[wasOpen ? "replaceState" : "pushState"]({}, "", urlFor(state.q, state.view));
  const hitsHere = state.hits.map((h, i) => [h, i]).filter(([h]) => h.doc_id === docId && h.page === page);
  if (hit == null && hitsHere.length) { state.view.hit = hitsHere[0][1]; state.selected = hitsHere[0][1]; }
  const current = state.view.hit != null ? state.hits[state.view.hit] : null;
  $("v-name").textContent = current ? current.name : `document ${docId}`;
  $("v-page").textContent = `page ${page}`;
  $("v-score").hidden = !current;
  if (current) $("v-score").textContent = `score ${current.score.toFixed(2)}`;
  $("v-file").hidden = true;
  updateHitNav();
  const msg = $("stage-msg"); msg.hidden = true;
  const img = $("page-img");
  img.classList.add("loading");
  drawBoxes($("v-boxes"), hitsHere.flatMap(([h]) => h.boxes));
  $("heat").hidden = true;
  try {
    const doc = await documentInfo(docId);
    if (!state.view || state.view.docId !== docId || state.view.page !== page) return;
    state.view.pages = doc.pages; state.view.name = doc.name;
    $("v-name").textContent = doc.name;
    $("v-name").title = doc.path;
    $("v-page").textContent = `page ${page} of ${doc.pages ?? "?"}`;
    fileLink(`${API}/documents/${docId}/file${doc.kind === "pdf" ? `#page=${page}` : ""}`, "open file", $("v-file"));
    $("v-file").hidden = false;
    updatePageNav();
    const stage = $("stage").getBoundingClientRect();
    const want = Math.min(2560, Math.max(1024, stage.width * (window.devicePixelRatio || 1)));
    const src = await imageSrc(`${API}/pages/${docId}/${page}/image?width=${Math.round(want)}&format=webp`);
    if (!state.view || state.view.docId !== docId || state.view.page !== page) return;
    await new Promise((resolve, reject) => {
      img.onload = resolve;
      img.onerror = () => api(src).then(() => reject(new Error("the page image could not be loaded")), reject);
      img.src = src;
      if (img.complete && img.naturalWidth) resolve();
    });
    const canvas = $("canvas");
    canvas.style.width = `${img.naturalWidth}px`; canvas.style.height = `${img.naturalHeight}px`;
    img.style.width = `${img.naturalWidth}px`; img.style.height = `${img.naturalHeight}px`;
    focusView(hitsHere.length ? hitsHere[0][0].boxes : []);
    if (state.heat.on) loadHeat();
  } catch (e) {
    msg.textContent = e.message; msg.hidden = false;
  } finally {
    img.classList.remove("loading");
  }
}

function closeViewer({ push = true } = {}) {
  $("viewer").hidden = true;
  document.body.style.overflow = "";
  state.view = null;
  if (push) history.pushState({}, "", urlFor(state.q, null));
  if (state.selected >= 0) selectCard(state.selected);
}

function updateHitNav() {
  const i = state.view && state.view.hit;
  $("hit-pos").textContent = i != null && state.total ? `${i + 1} / ${state.total}` : "";
  $("prev-hit").disabled = !(i > 0);
  $("next-hit").disabled = !(i != null ? i + 1 < state.total : state.hits.length > 0);
}

function updatePageNav() {
  const v = state.view;
  $("prev-page").disabled = !v || v.page <= 1;
  $("next-page").disabled = !v || (v.pages != null && v.page >= v.pages);
}

async function stepHit(delta) {
  if (!state.hits.length) return;
  let i = state.view && state.view.hit != null ? state.view.hit + delta : (delta > 0 ? 0 : state.hits.length - 1);
  if (i >= state.hits.length && state.hits.length < state.total) await loadMore();
  i = Math.max(0, Math.min(state.hits.length - 1, i));
  openHit(i);
}

function stepPage(delta) {
  const v = state.view;
  if (!v) return;
  const p = v.page + delta;
  if (p < 1 || (v.pages != null && p > v.pages)) return;
  openPage(v.docId, p);
}

// ---- zoom & pan

function applyTransform() {
  const { s, x, y } = state.xf;
  $("canvas").style.transform = `translate(${x}px, ${y}px) scale(${s})`;
  $("zoom-level").textContent = `${Math.round(s / state.fitScale * 100)}%`;
}

function fitPage() {
  const img = $("page-img"), r = $("stage").getBoundingClientRect();
  if (!img.naturalWidth) return;
  const s = Math.min((r.width - 32) / img.naturalWidth, (r.height - 32) / img.naturalHeight);
  state.fitScale = s;
  state.xf = { s, x: (r.width - img.naturalWidth * s) / 2, y: (r.height - img.naturalHeight * s) / 2 };
  applyTransform();
}

// fit the page width and scroll so the first box is in view (or the whole page if no boxes)
function focusView(boxes) {
  const img = $("page-img"), r = $("stage").getBoundingClientRect();
  if (!img.naturalWidth) return;
  const w = img.naturalWidth, h = img.naturalHeight;
  state.fitScale = Math.min((r.width - 32) / w, (r.height - 32) / h);
  const s = Math.min((r.width - 32) / w, 1.6 * (r.height - 32) / h);
  let x = (r.width - w * s) / 2, y = 16;
  if (boxes.length && h * s > r.height) {
    const cy = (boxes[0][1] + boxes[0][3]) / 2 * h * s;
    y = Math.min(16, Math.max(r.height - 16 - h * s, r.height / 2 - cy));
  } else if (h * s < r.height) {
    y = (r.height - h * s) / 2;
  }
  state.xf = { s, x, y };
  applyTransform();
}

function zoomAt(factor, px, py) {
  const r = $("stage").getBoundingClientRect();
  if (px == null) { px = r.width / 2; py = r.height / 2; }
  const { s, x, y } = state.xf;
  const ns = Math.max(0.05, Math.min(12, s * factor));
  state.xf = { s: ns, x: px - (px - x) * ns / s, y: py - (py - y) * ns / s };
  applyTransform();
}

function setupStage() {
  const stage = $("stage");
  let drag = null;
  stage.addEventListener("pointerdown", (e) => {
    if (e.button !== 0) return;
    drag = { id: e.pointerId, x: e.clientX, y: e.clientY, ox: state.xf.x, oy: state.xf.y };
    stage.setPointerCapture(e.pointerId); stage.classList.add("panning");
  });
  stage.addEventListener("pointermove", (e) => {
    if (!drag || e.pointerId !== drag.id) return;
    state.xf.x = drag.ox + e.clientX - drag.x; state.xf.y = drag.oy + e.clientY - drag.y;
    applyTransform();
  });
  const end = () => { drag = null; stage.classList.remove("panning"); };
  stage.addEventListener("pointerup", end); stage.addEventListener("pointercancel", end);
  stage.addEventListener("wheel", (e) => {
    e.preventDefault();
    const r = stage.getBoundingClientRect();
    if (e.ctrlKey || e.metaKey || !e.shiftKey) zoomAt(Math.exp(-e.deltaY * 0.0015), e.clientX - r.left, e.clientY - r.top);
  }, { passive: false });
  stage.addEventListener("dblclick", (e) => {
    const r = stage.getBoundingClientRect();
    zoomAt(e.shiftKey ? 0.5 : 2, e.clientX - r.left, e.clientY - r.top);
  });
  window.addEventListener("resize", () => { if (state.view) fitPage(); });
}

// ---- heatmaps (per token and whole query), drawn client-side from the JSON grids

const LUT = HEAT_LUT;  // the shared colour map (colormap.js, written from tokensearch/highlight.py)

function tokenLabel(t) { return t.replace(/^Ġ|^▁/, "␣").replace(/Ġ|▁/g, "␣") || "∅"; }

async function toggleHeat(on = !state.heat.on) {
  state.heat.on = on;
  $("heat-toggle").setAttribute("aria-pressed", String(on));
  $("heat-bar").hidden = !on;
  $("heat").hidden = !on;
  $("viewer").classList.toggle("heat-on", on);  // boxes become outlines so the map shows through
  if (on) await loadHeat();
}

async function loadHeat() {
  const v = state.view;
  if (!v || !state.q) {
    $("heat-tokens").replaceChildren(el("span", { class: "muted small", text: "search for something first" }));
    return;
  }
  const key = `${v.docId}/${v.page}/${state.q}`;
  if (state.heat.key !== key) {
    state.heat.data = null; state.heat.key = key;
    $("heat-tokens").replaceChildren(el("span", { class: "muted small", text: "computing…" }));
    try {
      const data = await getJSON(`${API}/pages/${v.docId}/${v.page}/heatmap?${new URLSearchParams({ q: state.q, format: "json" })}`);
      if (state.heat.key !== key) return;
      state.heat.data = data;
    } catch (e) {
      state.heat.key = "";
      $("heat-tokens").replaceChildren(el("span", { class: "muted small", text: e.message }));
      return;
    }
  }
  const d = state.heat.data;
  if (state.heat.token >= d.tokens.length) state.heat.token = -1;
  const chips = [el("button", { type: "button", role: "radio", "data-token": "-1", text: "whole query" })];
  d.tokens.forEach((t, i) => chips.push(el("button", { type: "button", role: "radio", "data-token": String(i), text: tokenLabel(t), title: `token ${i}: ${JSON.stringify(t)}` })));
  for (const c of chips) {
    const i = Number(c.dataset.token);
    c.setAttribute("aria-pressed", String(i === state.heat.token));
    c.setAttribute("aria-checked", String(i === state.heat.token));
    c.addEventListener("click", () => { state.heat.token = i; loadHeat(); });
  }
  $("heat-tokens").replaceChildren(...chips);
  drawHeat(state.heat.token < 0 ? d.combined : d.maps[state.heat.token], d.grid_width, d.grid_height);
  $("heat").hidden = !state.heat.on;
}

function drawHeat(grid, w, h) {
  const cv = $("heat");
  cv.width = w; cv.height = h;
  let lo = Infinity, hi = -Infinity;
  for (const row of grid) for (const v of row) { if (v < lo) lo = v; if (v > hi) hi = v; }
  if (hi > 0) lo = Math.max(lo, 0);  // cells with no text have cosine 0: keep them (and anti-matches) clear
  const span = hi - lo > 1e-9 ? hi - lo : 1;
  const img = new ImageData(w, h);
  for (let y = 0; y < h; y++) {
    const row = grid[y];
    for (let x = 0; x < w; x++) {
      const t = Math.max(0, Math.min(1, (row[x] - lo) / span)), k = Math.round(t * 255), o = (y * w + x) * 4;
      img.data[o] = LUT[k * 3]; img.data[o + 1] = LUT[k * 3 + 1]; img.data[o + 2] = LUT[k * 3 + 2];
      img.data[o + 3] = Math.round(Math.pow(t, 1.3) * 235);
    }
  }
  cv.getContext("2d").putImageData(img, 0, 0);
}

function cycleToken() {
  const d = state.heat.data;
  if (!state.heat.on || !d) return;
  state.heat.token = state.heat.token + 1 >= d.tokens.length ? -1 : state.heat.token + 1;
  loadHeat();
}

// ---------------------------------------------------------------------------------------------- uploads

async function upload(files) {
  files = [...files];
  if (!files.length) return;
  const fd = new FormData();
  for (const f of files) fd.append("file", f, f.name);
  toast(`Uploading ${files.length} file${files.length > 1 ? "s" : ""}…`, 0);
  try {
    const r = await (await api(`${API}/documents`, { method: "POST", body: fd })).json();
    await followJob(r.job.id);
  } catch (e) {
    toast(`Upload failed: ${e.message}`, 8000);
  }
}

async function followJob(id) {
  for (;;) {
    const j = await getJSON(`${API}/index-jobs/${id}`);
    const p = j.progress;
    if (j.status === "done") {
      const failed = (j.report && j.report.failed.length) || 0;
      toast(`Indexed ${j.report ? j.report.pages : p.pages_done} page(s)${failed ? `, ${failed} file(s) failed: ${j.report.failed[0][1]}` : ""}`, 6000);
      state.docs.clear();
      if (state.q) search(state.q, { push: false }); else showWelcome();
      return;
    }
    if (["failed", "cancelled", "interrupted"].includes(j.status)) { toast(`Indexing ${j.status}: ${j.error || ""}`, 8000); return; }
    toast(`Indexing… ${p.pages_done}/${p.pages_total || "?"} pages${p.pages_per_s ? ` · ${p.pages_per_s.toFixed(1)} pages/s` : ""}`, 0);
    await new Promise((r) => setTimeout(r, 700));
  }
}

// ---------------------------------------------------------------------------------------------- key

function askKey(message) {
  const dlg = $("key-dialog");
  if (dlg.open) return;
  $("key-input").value = "";
  if (message) dlg.querySelector("p").textContent = message;
  dlg.showModal();
}

function setupKey() {
  $("key-dialog").addEventListener("close", () => {
    if ($("key-dialog").returnValue !== "ok") return;
    state.key = $("key-input").value.trim();
    localStorage.setItem("tokensearch.key", state.key);
    blobCache.clear();
    route({ push: false });
  });
  $("key-button").addEventListener("click", () => askKey());
}

// ---------------------------------------------------------------------------------------------- wiring

function typing(e) {
  const t = e.target;
  return t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.isContentEditable);
}

function onKey(e) {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === "Escape") {
    if (typing(e)) { e.target.blur(); return; }
    if (!$("viewer").hidden) closeViewer();
    return;
  }
  if (typing(e) || document.querySelector("dialog[open]")) return;
  const viewing = !$("viewer").hidden;
  const keys = {
    "/": () => { if (viewing) closeViewer(); $("q").focus(); $("q").select(); },
    "?": () => $("help").showModal(),
    j: () => (viewing ? stepHit(1) : selectCard(state.selected + 1)),
    k: () => (viewing ? stepHit(-1) : selectCard(state.selected - 1)),
  };
  if (viewing) Object.assign(keys, {
    "[": () => stepPage(-1), "]": () => stepPage(1), ArrowLeft: () => stepPage(-1), ArrowRight: () => stepPage(1),
    "+": () => zoomAt(1.25), "=": () => zoomAt(1.25), "-": () => zoomAt(0.8), "0": () => fitPage(),
    h: () => toggleHeat(), t: () => cycleToken(),
  });
  const f = keys[e.key];
  if (f) { e.preventDefault(); f(); }
}

async function route({ push = false, startUp = false } = {}) {
  const p = new URLSearchParams(location.search);
  const q = p.get("q") || "";
  const filters = {};
  for (const [name, key] of Object.entries(FILTERS)) if (p.get(key)) filters[name] = p.get(key);
  // at start-up on a bare URL, what was typed while /healthz was on its way stays in the box for its Enter
  const typed = startUp && !q && !Object.keys(filters).length;
  if (q !== state.q || !sameFilters(filters, state.filters) || !state.hits.length) await search(q, { push, filters, typed });
  const doc = Number(p.get("doc")), page = Number(p.get("page"));
  if (doc > 0 && page > 0) openPage(doc, page, { push: false });
  else if (!$("viewer").hidden) closeViewer({ push: false });
}

async function init() {
  // every handler is in place before the first await: a query typed while /healthz is on its way is the
  // app's search, not the form's native submit (a reload that dropped what was typed after it)
  setupKey();
  setupStage();
  $("search-form").addEventListener("submit", (e) => { e.preventDefault(); search($("q").value); });
  // a filter applies as soon as it is set (a text field when it is left or on Enter)
  for (const id of Object.values(FILTER_INPUTS)) {
    $(id).addEventListener("change", () => { if (!sameFilters(readFilters(), state.filters)) search($("q").value); });
  }
  $("f-clear").addEventListener("click", () => { showFilters({}); search($("q").value); });
  $("more").addEventListener("click", loadMore);
  $("close").addEventListener("click", () => closeViewer());
  $("prev-hit").addEventListener("click", () => stepHit(-1));
  $("next-hit").addEventListener("click", () => stepHit(1));
  $("prev-page").addEventListener("click", () => stepPage(-1));
  $("next-page").addEventListener("click", () => stepPage(1));
  $("zoom-in").addEventListener("click", () => zoomAt(1.25));
  $("zoom-out").addEventListener("click", () => zoomAt(0.8));
  $("zoom-fit").addEventListener("click", fitPage);
  $("heat-toggle").addEventListener("click", () => toggleHeat());
  $("help-button").addEventListener("click", () => $("help").showModal());
  $("upload").addEventListener("change", (e) => { upload(e.target.files); e.target.value = ""; });
  let depth = 0;
  window.addEventListener("dragenter", (e) => { if (e.dataTransfer.types.includes("Files")) { depth++; $("drop").hidden = false; } });
  window.addEventListener("dragleave", () => { if (--depth <= 0) { depth = 0; $("drop").hidden = true; } });
  window.addEventListener("dragover", (e) => e.preventDefault());
  window.addEventListener("drop", (e) => { e.preventDefault(); depth = 0; $("drop").hidden = true; upload(e.dataTransfer.files); });
  document.addEventListener("keydown", onKey);
  window.addEventListener("popstate", () => route({ push: false }));
  try {
    const h = await (await fetch("/healthz")).json();
    state.auth = !!h.auth;
  } catch (_) { /* reported by the first API call */ }
  $("key-button").hidden = !state.auth;
  if (state.auth && !state.key) askKey();
  if (!state.searchSeq) await route({ push: false, startUp: true });  // else a search typed meanwhile is the state
  if (!state.q) $("q").focus();
}

init();
