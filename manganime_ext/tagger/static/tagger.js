// The page tagger's page: navigation happens here, every change goes to the server, which saves it at once.
// Names from the series are only ever written with textContent, never parsed as HTML.
"use strict";

const params = new URLSearchParams(location.search);
const S = {
  token: params.get("token") || "",
  series: null,          // /api/series: episodes with progress, store versions
  ep: null,              // the current episode's state (/api/episodes/<i>)
  frame: Math.max(0, parseInt(params.get("frame") || "0", 10) || 0),
  page: null,            // the page a tag applies to, when the person chose one with [ ]; else the frame's page
  queue: Promise.resolve(),
  shown: 0,              // counter that drops late image loads
  t0: 0,                 // when the action that changed the frame started (latency figures)
  urlTimer: 0,
};
window.taggerTimings = [];  // ms from an action to its frame decoded on screen (benchmarks read it)
const $ = (id) => document.getElementById(id);

// --- the server -------------------------------------------------------------------------------------

async function api(path, body) {
  const init = { headers: { "X-Tagger-Token": S.token } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  const data = await res.json();
  return { ok: res.ok, status: res.status, data };
}

function imageUrl(kind, ep, n) {
  const v = kind === "frames" ? `v=${S.series.versions[ep]}&` : "";
  const ext = kind === "frames" ? ".jpg" : "";
  return `/${kind}/${ep}/${n}${ext}?${v}token=${encodeURIComponent(S.token)}`;
}

// --- the page function, as the page sees it ------------------------------------------------------------

function excluded(f) {
  return S.ep.exclusions.some(([a, b]) => a <= f && f < b);
}

function pageIndexOf(f) {  // index into the episode's pages by tags + linear guess; -1 without a page
  const g = S.ep.guess;
  if (f < 0 || f >= S.ep.frames || excluded(f) || f > g[g.length - 1]) return -1;
  let lo = 0, hi = g.length - 1;
  while (lo < hi) { const mid = (lo + hi) >> 1; if (g[mid] >= f) hi = mid; else lo = mid + 1; }
  return lo;
}

function currentPage() {
  if (S.page !== null) return S.page;
  const i = pageIndexOf(S.frame);
  return i < 0 ? null : S.ep.first_page + i;
}

function tagged(i) { return S.ep.boundaries[i] < S.ep.frames; }

function boundaryFrames() {  // [frame, page index] of every tag and every ghost, by frame
  const out = [];
  S.ep.boundaries.forEach((b, i) => {
    if (tagged(i)) out.push([b, i]);
    else if (S.ep.proposal && S.ep.proposal[i] < S.ep.frames) out.push([S.ep.proposal[i], i]);
  });
  return out.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
}

function shotStart(f) {  // first frame of the shot holding f
  let s = 0;
  for (const c of S.ep.cuts) { if (c <= f) s = c; else break; }
  return s;
}

// --- actions ---------------------------------------------------------------------------------------

function setFrame(f, page = null) {
  S.t0 = performance.now();
  S.frame = Math.min(Math.max(0, f), S.ep.frames - 1);
  S.page = page;
  render();
}

function setPage(delta) {
  const p = currentPage();
  const first = S.ep.first_page, last = first + S.ep.boundaries.length - 1;
  const base = p === null ? (delta > 0 ? first - 1 : last + 1) : p;
  S.page = Math.min(Math.max(first, base + delta), last);
  render();
}

function step() { return Math.max(1, parseInt($("step-box").value, 10) || 1); }

const NAV = {
  nextFrame: () => setFrame(S.frame + 1),
  prevFrame: () => setFrame(S.frame - 1),
  forwardStep: () => setFrame(S.frame + step()),
  backStep: () => setFrame(S.frame - step()),
  nextStop: () => { const s = S.ep.stops.find((x) => x > S.frame); if (s !== undefined) setFrame(s); },
  prevStop: () => { const s = [...S.ep.stops].reverse().find((x) => x < S.frame); if (s !== undefined) setFrame(s); },
  midpoint: () => {
    const start = shotStart(S.frame);
    const next = S.ep.cuts.find((c) => c > S.frame);
    setFrame(Math.floor((start + (next === undefined ? S.ep.frames : next) - 1) / 2));
  },
  first: () => setFrame(0),
  last: () => setFrame(S.ep.frames - 1),
  nextBoundary: () => {
    const p = currentPage();
    const b = boundaryFrames().find(([f, i]) => f > S.frame || (f === S.frame && p !== null && i > p - S.ep.first_page));
    if (b) setFrame(b[0], S.ep.first_page + b[1]);
  },
  prevBoundary: () => {
    const p = currentPage();
    const b = boundaryFrames().reverse().find(([f, i]) => f < S.frame || (f === S.frame && p !== null && i < p - S.ep.first_page));
    if (b) setFrame(b[0], S.ep.first_page + b[1]);
  },
  nextPage: () => setPage(1),
  prevPage: () => setPage(-1),
  nextEpisode: () => switchEpisode(S.ep.index + 1),
  prevEpisode: () => switchEpisode(S.ep.index - 1),
};

// Writes: queued, so quick key presses reach the server in order, each based on the latest revision.
function send(action, extra = {}, follow = null) {
  const page = currentPage();
  if (page === null && !["accept_all", "undo", "redo"].includes(action)) {
    say(`Refused: frame ${S.frame} has no page (excluded, or after the last page); choose one with ] or [`, "error");
    return;
  }
  S.queue = S.queue.then(async () => {
    document.body.dataset.busy = "1";
    try {
      const body = Object.assign({ action, revision: S.ep.revision, page, frame: S.frame }, extra);
      const { ok, status, data } = await api(`/api/episodes/${S.ep.index}`, body);
      if (data.state || ok) S.ep = data.state || data;
      if (ok) {
        say(describe(action, page), "ok");
        if (follow) follow(page);
      } else {
        say(status === 409 ? `Conflict: ${data.error}` : `Refused: ${data.error}`, "error");
      }
      updateProgress();
      render();
    } catch (e) {
      say(`Not saved: the tagger server did not answer (${e.message}); is it still running?`, "error");
    } finally {
      document.body.dataset.busy = "0";
      document.body.dataset.revision = String(S.ep.revision);
    }
  });
}

function keepPageAt(page) {  // after a nudge or an accept, follow the boundary that moved
  if (page === null) return;
  const b = S.ep.boundaries[page - S.ep.first_page];
  if (b < S.ep.frames) setFrame(b, page);
}

function describe(action, page) {
  const where = S.ep.file.split("/").slice(-2).join("/");
  if (action === "tag") return `Page ${page} ends at frame ${S.frame} — saved to ${where}`;
  if (action === "undo" || action === "redo") return `${action} — saved to ${where}`;
  if (action === "accept_all") return `Proposals taken for the untagged pages — saved to ${where}`;
  return `${action} page ${page} — saved to ${where}`;
}

const EDIT = {
  tag: () => send("tag"),
  confirmNext: () => send("tag", {}, () => NAV.nextBoundary()),
  untag: () => send("untag"),
  accept: () => send("accept", {}, keepPageAt),
  acceptAll: () => send("accept_all"),
  nudgeUp: () => send("nudge", { delta: 1 }, keepPageAt),
  nudgeDown: () => send("nudge", { delta: -1 }, keepPageAt),
  nudgeUpStep: () => send("nudge", { delta: step() }, keepPageAt),
  nudgeDownStep: () => send("nudge", { delta: -step() }, keepPageAt),
  undo: () => send("undo"),
  redo: () => send("redo"),
};

function run(name) {
  if (!S.ep) return;
  (NAV[name] || EDIT[name])();
}

// --- keyboard ----------------------------------------------------------------------------------------

function keyAction(e) {
  const k = e.key, ctrl = e.ctrlKey || e.metaKey;
  if (ctrl && (k === "z" || k === "Z")) return e.shiftKey ? "redo" : "undo";
  if (ctrl && (k === "y" || k === "Y")) return "redo";
  if (ctrl || e.altKey) return null;
  const table = {
    ArrowRight: e.shiftKey ? "forwardStep" : "nextFrame", ArrowLeft: e.shiftKey ? "backStep" : "prevFrame",
    ArrowDown: "nextStop", ArrowUp: "prevStop", Home: "first", End: "last", m: "midpoint",
    n: "nextBoundary", N: "prevBoundary", "]": "nextPage", "[": "prevPage",
    Enter: "tag", t: "tag", " ": "confirmNext", Delete: "untag", Backspace: "untag",
    ".": "nudgeUp", ",": "nudgeDown", ">": "nudgeUpStep", "<": "nudgeDownStep",
    a: "accept", A: "acceptAll", z: "undo", Z: "redo", e: "nextEpisode", E: "prevEpisode",
  };
  return table[k] || null;
}

document.addEventListener("keydown", (e) => {
  if (e.target.tagName === "INPUT" || e.target.tagName === "SELECT") {
    if (e.key === "Escape") e.target.blur();
    return;
  }
  if (e.key === "f" || e.key === "s") {
    e.preventDefault();
    const box = $(e.key === "f" ? "frame-box" : "step-box");
    box.focus();
    box.select();
    return;
  }
  const name = keyAction(e);
  if (name) {
    e.preventDefault();
    run(name);
  }
});

// --- drawing -----------------------------------------------------------------------------------------

function say(text, kind) {
  const m = $("message");
  m.textContent = text;
  m.className = kind;
}

// The current frame first: the filmstrip and the prefetches (``then``) ask for their images only once it is
// decoded, so on a jump to an uncached frame its request does not queue behind sixteen others.
function showFrame(then) {
  const img = $("frame");
  const ticket = ++S.shown, t0 = S.t0, frame = S.frame;
  const url = imageUrl("frames", S.ep.index, frame);
  if (img.dataset.url === url) { then(); return; }
  img.dataset.url = url;
  const next = new Image();
  next.fetchPriority = "high";
  next.src = url;
  next.decode().then(() => {
    if (ticket !== S.shown) return;
    img.src = url;
    then();
    requestAnimationFrame(() => {
      if (t0) window.taggerTimings.push(performance.now() - t0);
      document.body.dataset.shown = String(frame);
    });
  }).catch(() => then());
}

function prefetch() {
  const f = S.frame, n = S.ep.frames, s = step();
  const nextStop = S.ep.stops.find((x) => x > f);
  const wanted = [f + 1, f - 1, f + s, f - s, nextStop, nextStop + 1, ...[...S.ep.stops].filter((x) => x < f).slice(-1)];
  for (const g of wanted) {
    if (g !== undefined && g >= 0 && g < n) new Image().src = imageUrl("frames", S.ep.index, g);
  }
}

function render() {
  const ep = S.ep, f = S.frame;
  const p = currentPage();
  showFrame(() => { drawFilmstrip(); prefetch(); });
  const i = pageIndexOf(f);
  const shot = S.ep.cuts.filter((c) => c <= f).length + 1;
  let where = excluded(f) ? "excluded: no page" : (i < 0 ? "after the last page" :
    `page ${ep.first_page + i} (${tagged(i) ? "tagged" : "guess"})`);
  $("frame-caption").textContent = `frame ${f} of ${ep.frames - 1} · shot ${shot} · ${where}`;
  const pageImg = $("page");
  if (p === null) {
    pageImg.classList.add("none");
    $("page-caption").textContent = "no page for this frame";
  } else {
    pageImg.classList.remove("none");
    pageImg.src = imageUrl("pages", ep.index, p);
    const k = p - ep.first_page, last = ep.first_page + ep.boundaries.length - 1;
    const end = tagged(k) ? `ends at frame ${ep.boundaries[k]} (${ep.provenance[k] === "hand" ? "tag" : "proposal taken"})`
      : `untagged (guess: ends near frame ${ep.guess[k]}${ep.proposal && ep.proposal[k] < ep.frames ? `, proposal ${ep.proposal[k]}` : ""})`;
    $("page-caption").textContent = `page ${p} of ${ep.first_page}–${last}${S.page !== null ? " (chosen)" : ""} · ${end}`;
  }
  $("frame-box").value = String(f);
  drawTimeline();
  clearTimeout(S.urlTimer);  // the URL keeps the place for a reload; browsers throttle rapid replaceState
  S.urlTimer = setTimeout(() => {
    const url = new URL(location.href);
    url.searchParams.set("episode", String(S.ep.index));
    url.searchParams.set("frame", String(S.frame));
    history.replaceState(null, "", url);
  }, 300);
}

function drawFilmstrip() {
  const strip = $("filmstrip");
  const cuts = new Set(S.ep.cuts);
  [...strip.children].forEach((img, k) => {
    const g = S.frame + k - 4;
    img.className = (g === S.frame ? "current " : "") + (cuts.has(g) ? "shot-start" : "");
    if (g < 0 || g >= S.ep.frames) { img.classList.add("blank"); img.removeAttribute("src"); return; }
    img.src = imageUrl("frames", S.ep.index, g);
    img.title = `frame ${g}${cuts.has(g) ? " (new shot)" : ""}`;
    img.dataset.frame = String(g);
  });
}

function drawTimeline() {
  const c = $("timeline"), ep = S.ep;
  const w = c.clientWidth || 800, h = c.height;
  if (c.width !== w) c.width = w;
  const ctx = c.getContext("2d");
  const x = (f) => (f + 0.5) / ep.frames * w;
  ctx.clearRect(0, 0, w, h);
  let start = 0;  // page bands: tagged pages solid, guessed ones pale
  ep.guess.forEach((g, i) => {
    ctx.fillStyle = tagged(i) ? (i % 2 ? "#c9dcf5" : "#e3edfa") : (i % 2 ? "#eeeeee" : "#f8f8f8");
    ctx.fillRect(x(start) - 0.5, 16, x(g) - x(start) + 1, h - 16);
    start = g + 1;
  });
  ctx.fillStyle = "#c8c8c8";
  for (const [a, b] of ep.exclusions) ctx.fillRect(x(a) - 0.5, 0, x(b) - x(a), h);
  ctx.fillStyle = "#888";
  for (const cut of ep.cuts) ctx.fillRect(Math.round(x(cut - 0.5)), 0, 1, 14);
  ep.boundaries.forEach((b, i) => {
    const ghost = ep.proposal ? ep.proposal[i] : ep.frames;
    if (ghost < ep.frames && ghost !== b) {
      ctx.strokeStyle = "#e08a00";
      ctx.setLineDash([3, 3]);
      ctx.beginPath(); ctx.moveTo(x(ghost), 16); ctx.lineTo(x(ghost), h); ctx.stroke();
      ctx.setLineDash([]);
    }
    if (tagged(i)) {
      ctx.fillStyle = ep.provenance[i] === "hand" ? "#1f5fbf" : "#8a3fd1";
      ctx.fillRect(Math.round(x(b)) - 1, 16, 3, h - 16);
    }
  });
  ctx.fillStyle = "#d33";
  ctx.fillRect(Math.round(x(S.frame)) - 1, 0, 3, h);
}

function updateProgress() {
  const e = S.series.episodes[S.ep.index];
  e.hand = S.ep.provenance.filter((p) => p === "hand").length;
  e.proposed = S.ep.provenance.filter((p) => p === "proposed").length;
  const fmt = (a) => `${a.hand}/${a.pages} pages tagged${a.proposed ? ` (+${a.proposed} proposals taken)` : ""}`;
  $("progress-episode").textContent = `${e.name}: ${fmt(e)}`;
  const total = S.series.episodes.reduce((t, x) => ({ hand: t.hand + x.hand, proposed: t.proposed + x.proposed,
    pages: t.pages + x.pages }), { hand: 0, proposed: 0, pages: 0 });
  $("progress-series").textContent = `series (${S.series.config}): ${fmt(total)}`;
}

// --- start ---------------------------------------------------------------------------------------------

async function switchEpisode(index) {
  if (index < 0 || index >= S.series.episodes.length) return;
  await S.queue;
  document.body.dataset.busy = "1";
  const { ok, data } = await api(`/api/episodes/${index}`);
  if (!ok) { say(data.error, "error"); return; }
  const same = S.ep.index === index;
  S.ep = data;
  $("episode").value = String(index);
  updateProgress();
  setFrame(same ? S.frame : 0);
  document.body.dataset.busy = "0";
  document.body.dataset.revision = String(S.ep.revision);
}

async function start() {
  const strip = $("filmstrip");
  for (let k = 0; k < 9; k++) {
    const img = document.createElement("img");
    img.alt = "";
    img.addEventListener("click", () => { if (img.dataset.frame) setFrame(parseInt(img.dataset.frame, 10)); });
    strip.appendChild(img);
  }
  const { ok, data } = await api("/api/series");
  if (!ok) { say(data.error, "error"); return; }
  S.series = data;
  const select = $("episode");
  data.episodes.forEach((e) => {
    const o = document.createElement("option");
    o.value = String(e.index);
    o.textContent = e.name;
    select.appendChild(o);
  });
  select.addEventListener("change", () => { switchEpisode(parseInt(select.value, 10)); select.blur(); });
  $("frame-box").addEventListener("keydown", (e) => {
    if (e.key === "Enter") { setFrame(parseInt(e.target.value, 10) || 0); e.target.blur(); }
  });
  $("step-box").addEventListener("keydown", (e) => { if (e.key === "Enter") e.target.blur(); });
  $("timeline").addEventListener("click", (e) => {
    const r = e.target.getBoundingClientRect();
    setFrame(Math.floor((e.clientX - r.left) / r.width * S.ep.frames));
  });
  document.querySelectorAll("#controls button").forEach((b) => b.addEventListener("click", () => {
    run(b.dataset.action);
    b.blur();  // so that Enter or Space afterwards are the tagger's keys, not a second click
  }));
  window.addEventListener("resize", () => S.ep && drawTimeline());
  const first = Math.min(Math.max(0, parseInt(params.get("episode") || "0", 10) || 0), data.episodes.length - 1);
  S.ep = null;
  const { ok: ok2, data: state } = await api(`/api/episodes/${first}`);
  if (!ok2) { say(state.error, "error"); return; }
  S.ep = state;
  select.value = String(first);
  updateProgress();
  setFrame(S.frame);
  document.body.dataset.busy = "0";
  document.body.dataset.revision = String(S.ep.revision);
  say("Ready. Every change is saved at once.", "ok");
}

start();
