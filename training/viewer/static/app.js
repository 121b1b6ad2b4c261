// turngym view: plain JavaScript, no dependencies. Every value from a run is inserted as text
// (textContent / attributes), never as HTML.
"use strict";

const TOKEN = new URLSearchParams(location.search).get("token");
const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const DEFAULT_KEYS = ["reward/mean_outcome", "reward/success_rate", "reward/mean_turn_reward", "loss",
  "entropy", "adv/std", "groups/dropped_share", "episode/mean_turns"];
const PAGE = 20;

const state = {
  runs: [], current: null, overlay: new Set(), keys: null, tab: "curves",
  episodes: { offset: 0, total: 0, items: [] }, games: { offset: 0, total: 0 },
};

// ------------------------------------------------------------------ helpers
function el(tag, attrs, ...children) {
  const node = tag === "svg" || ["path", "line", "text", "rect", "g", "circle", "title"].includes(tag)
    ? document.createElementNS("http://www.w3.org/2000/svg", tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

async function api(path, params) {
  const url = new URL("api/" + path, location.origin + location.pathname.replace(/[^/]*$/, ""));
  for (const [k, v] of Object.entries(params || {})) if (v !== "" && v !== null && v !== undefined) url.searchParams.set(k, v);
  if (TOKEN) url.searchParams.set("token", TOKEN);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${response.status} ${await response.text()}`);
  return response.json();
}

function fmt(v, digits = 4) {
  if (v === null || v === undefined) return "—";
  if (typeof v === "boolean") return v ? "yes" : "no";
  if (typeof v !== "number") return String(v);
  return Number.isInteger(v) ? String(v) : v.toFixed(digits);
}

function numCell(field, v, digits = 4) {
  const cls = typeof v === "number" && !Number.isInteger(v) ? (v > 0 ? "num pos" : v < 0 ? "num neg" : "num") : "num";
  return el("span", { class: cls, "data-field": field, "data-value": v === null || v === undefined ? "null" : String(v) }, fmt(v, digits));
}

function setStatus(text) { document.getElementById("status").textContent = text; }

function runColor(id) {
  const i = state.runs.findIndex((r) => r.id === id);
  return COLORS[(i < 0 ? 0 : i) % COLORS.length];
}

// ------------------------------------------------------------------ runs list and tabs
async function loadRuns() {
  const { runs } = await api("runs");
  state.runs = runs;
  const list = document.getElementById("runs");
  list.replaceChildren();
  for (const run of runs) {
    const box = el("input", { type: "checkbox", title: "overlay this run's curves", "data-overlay": run.id,
      on: { click: (e) => { e.stopPropagation(); toggleOverlay(run.id, e.target.checked); } } });
    const detail = run.kind === "run" ? `${run.steps} steps` : `${run.games} games`;
    list.append(el("li", { "data-run": run.id, title: run.path, on: { click: () => openRun(run.id) } },
      box, el("span", { class: "swatch", style: `background:${runColor(run.id)}` }), el("span", {}, run.name),
      el("span", { class: "kind" }, `${run.kind} · ${detail}`)));
  }
  const wanted = new URLSearchParams(location.hash.slice(1)).get("run");
  const first = runs.find((r) => r.id === wanted) || runs[0];
  if (first) await openRun(first.id);
  else setStatus("no runs");
}

function toggleOverlay(id, on) {
  if (on) state.overlay.add(id); else state.overlay.delete(id);
  if (state.tab === "curves") drawCurves();
}

function tabsFor(run) {
  return run.kind === "run"
    ? [["curves", "Curves"], ["eval", "Evaluation"], ["trajectories", "Trajectories"]]
    : [["tournament", "Tournament"]];
}

async function openRun(id) {
  const run = state.runs.find((r) => r.id === id);
  state.current = run;
  document.querySelectorAll("#runs li").forEach((li) => li.classList.toggle("active", li.dataset.run === id));
  const params = new URLSearchParams(location.hash.slice(1));
  params.set("run", id);
  history.replaceState(null, "", "#" + params.toString());
  const tabs = tabsFor(run);
  if (!tabs.some(([t]) => t === state.tab)) state.tab = tabs[0][0];
  const bar = document.getElementById("tabs");
  bar.replaceChildren(...tabs.map(([t, label]) => el("button", { type: "button", "data-tab": t, on: { click: () => showTab(t) } }, label)));
  setStatus(`${run.name} — ${run.path}`);
  state.episodes.offset = 0;
  state.games.offset = 0;
  if (run.kind === "run") await loadStepFilters();
  await showTab(state.tab);
}

async function showTab(tab) {
  state.tab = tab;
  document.querySelectorAll("#tabs button").forEach((b) => b.classList.toggle("active", b.dataset.tab === tab));
  document.querySelectorAll(".panel").forEach((p) => p.classList.toggle("active", p.id === "panel-" + tab));
  if (tab === "curves") await drawCurves();
  if (tab === "eval") await drawEvals();
  if (tab === "trajectories") await loadEpisodes();
  if (tab === "tournament") await drawTournament();
}

// ------------------------------------------------------------------ curves
async function drawCurves() {
  const ids = [state.current.id, ...[...state.overlay].filter((i) => i !== state.current.id)]
    .filter((i) => state.runs.find((r) => r.id === i).kind === "run");
  const data = await Promise.all(ids.map((id) => api(`runs/${id}/curves`).then((d) => [id, d])));
  const allKeys = [...new Set(data.flatMap(([, d]) => d.keys))].sort();
  if (state.keys === null) state.keys = DEFAULT_KEYS.filter((k) => allKeys.includes(k));
  const picker = document.getElementById("curve-keys");
  picker.replaceChildren(...allKeys.map((k) => el("label", {},
    el("input", { type: "checkbox", checked: state.keys.includes(k), "data-key": k,
      on: { change: (e) => { state.keys = e.target.checked ? [...state.keys, k] : state.keys.filter((x) => x !== k); drawCurves(); } } }),
    " " + k)));
  const box = document.getElementById("curves");
  box.replaceChildren();
  for (const key of state.keys) {
    const lines = data.filter(([, d]) => d.series[key]).map(([id, d]) => ({ id, x: d.step, y: d.series[key] }));
    box.append(el("div", { class: "chart", id: "curve-" + key.replace(/[^A-Za-z0-9_-]/g, "_") }, el("h4", {}, key), lineChart(lines),
      el("div", { class: "legend" }, lines.map((l) => el("span", {}, el("span", { class: "swatch", style: `background:${runColor(l.id)}` }), " " + l.id)))));
  }
  if (!state.keys.length) box.append(el("p", { class: "hint" }, "Tick metrics above to draw them."));
}

function extent(values) {
  const v = values.filter((x) => x !== null && Number.isFinite(x));
  if (!v.length) return [0, 1];
  let lo = Math.min(...v), hi = Math.max(...v);
  if (lo === hi) { lo -= 0.5; hi += 0.5; }
  return [lo, hi];
}

function lineChart(lines, W = 420, H = 200) {
  const pad = { l: 48, r: 8, t: 8, b: 22 };
  const [x0, x1] = extent(lines.flatMap((l) => l.x));
  const [y0, y1] = extent(lines.flatMap((l) => l.y));
  const sx = (x) => pad.l + ((x - x0) / (x1 - x0)) * (W - pad.l - pad.r);
  const sy = (y) => H - pad.b - ((y - y0) / (y1 - y0)) * (H - pad.t - pad.b);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img" });
  svg.append(el("line", { class: "axis", x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b }),
    el("line", { class: "axis", x1: pad.l, y1: pad.t, x2: pad.l, y2: H - pad.b }));
  for (const y of [y0, (y0 + y1) / 2, y1]) svg.append(el("text", { class: "tick", x: pad.l - 4, y: sy(y) + 3, "text-anchor": "end" }, +y.toPrecision(3)));
  for (const x of [x0, x1]) svg.append(el("text", { class: "tick", x: sx(x), y: H - 6, "text-anchor": "middle" }, Math.round(x)));
  for (const line of lines) {
    let d = "", pen = "M";
    line.x.forEach((x, i) => {
      const y = line.y[i];
      if (y === null || !Number.isFinite(y)) { pen = "M"; return; }
      d += `${pen}${sx(x).toFixed(1)},${sy(y).toFixed(1)}`;
      pen = "L";
    });
    svg.append(el("path", { class: "series", d, stroke: runColor(line.id), "data-run": line.id, "data-points": line.y.length }));
  }
  return svg;
}

// ------------------------------------------------------------------ evaluation
async function drawEvals() {
  const { summary, config } = await api(`runs/${state.current.id}/summary`);
  const box = document.getElementById("evals");
  box.replaceChildren();
  const evals = summary.evals || {};
  const phases = Object.keys(evals);
  if (summary.in_progress) box.append(el("p", { class: "hint" }, `Still training (step ${summary.steps}): the evaluations so far, from the last checkpoint.`));
  if (!phases.length) box.append(el("p", { class: "hint" }, "No evaluation yet (eval.episodes is 0, or none has run)."));
  const modes = [...new Set(phases.flatMap((p) => Object.keys(evals[p])))];
  for (const mode of modes) {
    const table = el("table", { class: "grid", "data-mode": mode }, el("thead", {}, el("tr", {}, el("th", {}, "metric"), phases.map((p) => el("th", {}, p)))));
    const body = el("tbody");
    for (const metric of ["success", "mean_outcome", "invalid", "win", "draw", "loss"]) {
      if (!phases.some((p) => evals[p][mode] && evals[p][mode][metric])) continue;
      body.append(el("tr", {}, el("td", {}, metric), phases.map((p) => {
        const r = evals[p][mode] && evals[p][mode][metric];
        return el("td", { class: "num" }, r ? `${fmt(r.value, 3)}  [${fmt(r.low, 3)}, ${fmt(r.high, 3)}]  n=${r.n}` : "—");
      })));
    }
    table.append(body);
    box.append(el("h3", {}, mode), table, intervalChart(phases.filter((p) => evals[p][mode]).map((p) => ({ label: p, ...evals[p][mode].success }))));
  }
  if (summary.comparison) box.append(el("details", {}, el("summary", {}, "before → after: values and whether the 95% intervals overlap"),
    el("pre", {}, JSON.stringify(summary.comparison, null, 1))));
  if (config) box.append(el("details", {}, el("summary", {}, "config.yaml"), el("pre", {}, config)));
}

function intervalChart(rows, W = 420) {
  const H = 26 * rows.length + 24, pad = 90;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, class: "intervals" });
  const sx = (v) => pad + v * (W - pad - 12);
  rows.forEach((r, i) => {
    const y = 16 + i * 26;
    svg.append(el("text", { class: "tick", x: pad - 6, y: y + 4, "text-anchor": "end" }, `${r.label} success`),
      el("line", { class: "axis", x1: sx(r.low), x2: sx(r.high), y1: y, y2: y, "stroke-width": 3 }),
      el("circle", { cx: sx(r.value), cy: y, r: 4, fill: COLORS[i % COLORS.length] }));
  });
  svg.append(el("text", { class: "tick", x: sx(0), y: H - 4 }, "0"), el("text", { class: "tick", x: sx(1), y: H - 4, "text-anchor": "end" }, "1"));
  return svg;
}

// ------------------------------------------------------------------ trajectories
async function loadStepFilters() {
  const steps = await api(`runs/${state.current.id}/steps`, { limit: 1 });
  const stepInput = document.getElementById("f-step");
  stepInput.value = "";
  if (steps.first !== null) { stepInput.min = steps.first; stepInput.max = steps.last; }
  document.getElementById("f-stop").replaceChildren(el("option", { value: "" }, "any"), ...steps.stop_reasons.map((r) => el("option", { value: r }, r)));
  const note = steps.total === 0 ? "This run logged no trajectories (log.trajectory_groups is 0, or it predates the trajectory log)."
    : `${steps.total} logged steps, ${steps.first}–${steps.last}; leave the step empty for all`
      + (steps.capped_at ? `; the log reached log.trajectory_max_mb at step ${steps.capped_at}` : "");
  document.getElementById("steps-note").textContent = note;
}

function filters() {
  return { step: document.getElementById("f-step").value, outcome: document.getElementById("f-outcome").value,
    stop_reason: document.getElementById("f-stop").value };
}

async function loadEpisodes() {
  const page = await api(`runs/${state.current.id}/episodes`, { ...filters(), offset: state.episodes.offset, limit: PAGE });
  state.episodes.total = page.total;
  state.episodes.items = page.episodes;
  const body = document.querySelector("#episodes tbody");
  body.replaceChildren(...page.episodes.map((e, i) => el("tr", { class: "episode", "data-index": i, on: { click: () => showEpisode(e) } },
    el("td", { class: "num" }, e.step), el("td", {}, e.group_id), el("td", { class: "num" }, e.sample_index), el("td", { class: "num" }, e.seat),
    el("td", {}, numCell("outcome", e.outcome)), el("td", {}, e.stop_reason + (e.failed ? " (failed)" : "")),
    el("td", { class: "num" }, e.turns.length), el("td", {}, fmt(e.kept)),
    el("td", {}, el("button", { type: "button", class: "compare", on: { click: (ev) => { ev.stopPropagation(); compareGroup(e); } } }, "group")))));
  const last = Math.min(state.episodes.offset + PAGE, page.total);
  document.getElementById("page-info").textContent = page.total ? ` ${state.episodes.offset + 1}–${last} of ${page.total} ` : " no episodes ";
}

function showEpisode(e) {
  document.querySelectorAll("#episodes tr").forEach((tr) => tr.classList.remove("selected"));
  const detail = document.getElementById("episode-detail");
  const head = el("div", { class: "episode-head" },
    el("h3", {}, `step ${e.step} · ${e.group_id} · sample ${e.sample_index} · seat ${e.seat}`),
    el("p", {}, `env ${e.env_id} ${JSON.stringify(e.env_kwargs)} seed ${e.seed}; outcome `, numCell("outcome", e.outcome),
      `; stop reason ${e.stop_reason}; policy version ${e.policy_version}; ${e.kept ? "reached the loss" : "dropped from the loss"}`
      + (e.opponent ? `; opponent ${e.opponent}` : "") + (e.error ? `; error: ${e.error}` : "")
      + (e.info && Object.keys(e.info).length ? `; info ${JSON.stringify(e.info)}` : "")));
  detail.replaceChildren(head, ...e.turns.map((t) => turnCard(t)));
  detail.dataset.step = e.step;
  detail.dataset.group = e.group_key || e.group_id;
  detail.dataset.sample = e.sample_index;
  detail.scrollIntoView({ block: "start" });
}

function turnCard(t) {
  const gate = t.gate_open === null ? "—" : t.gate_open ? "open" : "closed";
  const components = Object.entries(t.components || {});
  return el("div", { class: "turn", "data-turn": t.turn },
    el("h4", {}, `turn ${t.turn} (seat ${t.seat})`),
    el("div", { class: "hint" }, "observation"), el("pre", { class: "observation" }, t.observation ?? "—"),
    el("div", { class: "hint" }, "reply"), el("pre", { class: "action" }, t.action),
    el("div", { class: "credit" },
      el("div", {}, el("span", { class: "k" }, "prompt tokens "), numCell("prompt_tokens", t.prompt_tokens)),
      el("div", {}, el("span", { class: "k" }, "completion tokens "), numCell("completion_tokens", t.completion_tokens)),
      el("div", {}, el("span", { class: "k" }, "finish "), t.finish_reason),
      el("div", {}, el("span", { class: "k" }, "turn reward "), numCell("reward", t.reward)),
      ...components.map(([k, v]) => el("div", {}, el("span", { class: "k" }, `· ${k} `), numCell("component:" + k, v))),
      el("div", {}, el("span", { class: "k" }, "gate "), el("span", { class: t.gate_open ? "gate-open" : "gate-closed", "data-field": "gate_open", "data-value": String(t.gate_open) }, gate)),
      el("div", {}, el("span", { class: "k" }, "gated reward "), numCell("gated_reward", t.gated_reward)),
      el("div", {}, el("span", { class: "k" }, "advantage "), numCell("advantage", t.advantage)),
      el("div", {}, el("span", { class: "k" }, "clip scale "), numCell("clip_scale", t.clip_scale))));
}

async function compareGroup(e) {
  const page = await api(`runs/${state.current.id}/episodes`, { step: e.step, group: e.group_key, limit: 100 });
  const members = page.episodes;
  const detail = document.getElementById("episode-detail");
  const grid = el("div", { class: "cmp", id: "group-compare", style: `grid-template-columns: repeat(${members.length}, minmax(220px, 1fr))` },
    members.map((m) => el("div", { class: "col", "data-sample": m.sample_index },
      el("b", {}, `sample ${m.sample_index}`), el("div", {}, "outcome ", numCell("outcome", m.outcome), ` · ${m.stop_reason}`),
      m.turns.map((t) => el("div", { class: "cmp-turn", "data-turn": t.turn }, el("pre", {}, t.action),
        el("div", {}, "r ", numCell("reward", t.reward), " · Â ", numCell("advantage", t.advantage), t.clip_scale === null ? "" : " · c ", t.clip_scale === null ? "" : numCell("clip_scale", t.clip_scale)))))));
  detail.replaceChildren(el("h3", {}, `group ${e.group_key} at step ${e.step}: ${members.length} rollouts side by side`), grid);
  detail.scrollIntoView({ block: "start" });
}

// ------------------------------------------------------------------ tournaments
async function drawTournament() {
  const id = state.current.id;
  const data = await api(`runs/${id}/tournament`);
  const box = document.getElementById("ratings");
  box.replaceChildren(el("h3", {}, `${data.env_id || ""}: ${data.games ?? 0} games, ${data.rated ?? 0} rated`));
  const rows = data.ratings || [];
  const table = el("table", { class: "grid", id: "ratings-table" }, el("thead", {}, el("tr", {}, ["rank", "player", "Elo", "95% interval", "OpenSkill μ ± σ", "games", "mean score"].map((h) => el("th", {}, h)))));
  table.append(el("tbody", {}, rows.map((r) => el("tr", { "data-player": r.player }, el("td", {}, r.rank), el("td", {}, r.player),
    el("td", {}, numCell("elo", r.elo, 1)), el("td", { class: "num" }, `[${fmt(r.low, 1)}, ${fmt(r.high, 1)}]`),
    el("td", { class: "num" }, `${fmt(r.openskill_mu, 2)} ± ${fmt(r.openskill_sigma, 2)}`), el("td", { class: "num" }, r.games), el("td", {}, numCell("mean_score", r.mean_score))))));
  box.append(table, eloChart(rows));
  drawPayoff(data.payoff);
  await loadGames();
}

function eloChart(rows, W = 520) {
  if (!rows.length) return el("span");
  const H = 24 * rows.length + 20, pad = 140;
  const lo = Math.min(...rows.map((r) => r.low ?? r.elo)), hi = Math.max(...rows.map((r) => r.high ?? r.elo));
  const sx = (v) => pad + ((v - lo) / (hi - lo || 1)) * (W - pad - 16);
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, id: "elo-chart" });
  rows.forEach((r, i) => {
    const y = 14 + i * 24;
    svg.append(el("text", { class: "tick", x: pad - 6, y: y + 4, "text-anchor": "end" }, r.player),
      el("line", { class: "axis", x1: sx(r.low ?? r.elo), x2: sx(r.high ?? r.elo), y1: y, y2: y, "stroke-width": 3 }),
      el("circle", { cx: sx(r.elo), cy: y, r: 4, fill: COLORS[i % COLORS.length] }));
  });
  svg.append(el("text", { class: "tick", x: pad, y: H - 3 }, Math.round(lo)), el("text", { class: "tick", x: W - 16, y: H - 3, "text-anchor": "end" }, Math.round(hi)));
  return svg;
}

function drawPayoff(payoff) {
  const box = document.getElementById("payoff");
  box.replaceChildren();
  if (!payoff || !payoff.players) return;
  const n = payoff.players.length, cell = 56, pad = 140, top = 80;
  const W = pad + n * cell + 8, H = top + n * cell + 8;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, id: "payoff-heatmap", style: `max-width:${W}px` });
  payoff.players.forEach((p, i) => {
    svg.append(el("text", { class: "tick", x: pad - 6, y: top + i * cell + cell / 2 + 3, "text-anchor": "end" }, p),
      el("text", { class: "tick", x: pad + i * cell + cell / 2, y: top - 6, "text-anchor": "start", transform: `rotate(-40 ${pad + i * cell + cell / 2} ${top - 6})` }, p));
    payoff.players.forEach((q, j) => {
      const v = payoff.mean_score[i][j];
      const fill = v === null ? "#f3f4f6" : `hsl(${Math.round(v * 120)}, 65%, ${85 - Math.abs(v - 0.5) * 40}%)`;
      svg.append(el("rect", { x: pad + j * cell, y: top + i * cell, width: cell - 2, height: cell - 2, fill, "data-row": p, "data-col": q, "data-value": v === null ? "null" : v },
        el("title", {}, `${p} vs ${q}: mean score ${fmt(v, 3)} over ${payoff.counts[i][j]} results`)),
      el("text", { class: "tick", x: pad + j * cell + cell / 2 - 1, y: top + i * cell + cell / 2 + 3, "text-anchor": "middle" }, v === null ? "" : v.toFixed(2)));
    });
  });
  box.append(el("h3", {}, "Payoff: row player's mean score against the column player"), svg);
}

async function loadGames() {
  const id = state.current.id;
  const page = await api(`runs/${id}/games`, { offset: state.games.offset, limit: PAGE });
  state.games.total = page.total;
  document.querySelector("#games tbody").replaceChildren(...page.games.map((g) => el("tr", {},
    el("td", { class: "num" }, g.index), el("td", {}, `${g.player_a} (${g.seat_a})`), el("td", {}, g.player_b), el("td", { class: "num" }, g.score_a),
    el("td", { class: "num" }, `${fmt(g.outcome_a, 2)} / ${fmt(g.outcome_b, 2)}`), el("td", {}, g.stop_reason ?? "—"), el("td", { class: "num" }, g.turns ?? "—"),
    el("td", {}, g.replay ? el("button", { type: "button", class: "replay", on: { click: () => showReplay(g) } }, "replay") : ""))));
  const last = Math.min(state.games.offset + PAGE, page.total);
  document.getElementById("games-info").textContent = page.total ? ` ${state.games.offset + 1}–${last} of ${page.total} ` : " no games ";
}

async function showReplay(g) {
  const r = await api(`runs/${state.current.id}/replay`, { player_a: g.player_a, player_b: g.player_b, index: g.index });
  const names = { [r.seat_a]: r.player_a, [1 - r.seat_a]: r.player_b };
  document.getElementById("replay").replaceChildren(el("h3", {}, `${r.player_a} vs ${r.player_b}, game ${r.index} (seed ${r.seed})`),
    ...r.moves.map((m, i) => el("div", { class: "move", "data-move": i }, el("div", { class: "hint" }, `move ${i + 1}: seat ${m.seat} (${names[m.seat]})`),
      el("pre", {}, m.observation ?? ""), el("div", {}, "→ ", el("b", {}, m.action)))),
    el("p", {}, `outcomes ${JSON.stringify(r.outcomes)}; ${r.stop_reason}`));
}

// ------------------------------------------------------------------ wiring
function wire() {
  for (const id of ["f-step", "f-outcome", "f-stop"]) document.getElementById(id).addEventListener("change", () => { state.episodes.offset = 0; loadEpisodes(); });
  document.getElementById("prev").addEventListener("click", () => { state.episodes.offset = Math.max(0, state.episodes.offset - PAGE); loadEpisodes(); });
  document.getElementById("next").addEventListener("click", () => { if (state.episodes.offset + PAGE < state.episodes.total) { state.episodes.offset += PAGE; loadEpisodes(); } });
  document.getElementById("games-prev").addEventListener("click", () => { state.games.offset = Math.max(0, state.games.offset - PAGE); loadGames(); });
  document.getElementById("games-next").addEventListener("click", () => { if (state.games.offset + PAGE < state.games.total) { state.games.offset += PAGE; loadGames(); } });
}

wire();
loadRuns().catch((e) => setStatus("error: " + e.message));
