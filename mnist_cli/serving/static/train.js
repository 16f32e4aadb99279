// The Train page: settings in the URL, POST /api/runs, then the run's Server-Sent Events drawn on canvases.
"use strict";

// config.py's defaults, for the fields the page shows
const DEFAULTS = {
  "data.dataset": "mnist", "model.depth": 2, "model.width": 512, "model.activation": "relu", "model.init": "default",
  "model.norm": "none", "model.dropout": 0, "train.optimizer": "adam", "train.lr": 0.002, "train.batch_size": 256,
  "train.epochs": 4, "seed": 0,
};
const TABLES = { xor: (a, b) => a ^ b, and: (a, b) => a & b, or: (a, b) => a | b };
const COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"];
const $ = (id) => document.getElementById(id);
const esc = (text) => String(text).replace(/[&<>"]/g, (ch) => `&#${ch.charCodeAt(0)};`);
const fields = [...document.querySelectorAll("[data-key]")];
let configs = {}, base = { ...DEFAULTS }, run = null, source = null;
let live = { steps: [], epochs: [], health: null, weights: null, stepsPerEpoch: 1, dataset: "mnist", seen: {} };

function pick(raw, key) { return key.split(".").reduce((node, part) => (node == null ? undefined : node[part]), raw); }

function fieldValue(el) {
  if (el.type !== "number") return el.value;
  return el.value === "" ? null : Number(el.value);
}

// The settings that differ from the starting point, as {"dotted.key": value}
function changed() {
  const out = {};
  for (const el of fields) if (fieldValue(el) !== base[el.dataset.key]) out[el.dataset.key] = fieldValue(el);
  return out;
}

function nested(flat) {
  const out = {};
  for (const [key, value] of Object.entries(flat)) {
    const parts = key.split(".");
    let node = out;
    for (const part of parts.slice(0, -1)) node = node[part] = node[part] || {};
    node[parts.at(-1)] = value;
  }
  return out;
}

function quote(word) { return /^[\w.,=+\-\/@:\[\]]+$/.test(word) ? word : `'${word.replaceAll("'", "'\"'\"'")}'`; }

function showCommand() {
  const cfg = $("config").value;
  const words = ["mnist", "train", ...(cfg ? [`configs/${cfg}.yaml`] : [])];
  for (const [key, value] of Object.entries(changed())) words.push("--set", quote(`${key}=${JSON.stringify(value).replace(/^"|"$/g, "")}`));
  $("command").textContent = words.join(" ");
  const params = new URLSearchParams();
  if (cfg) params.set("config", cfg);
  for (const [key, value] of Object.entries(changed())) params.set(fieldIdOf(key), value);
  history.replaceState(null, "", `/train${params.size ? "?" + params : ""}`);
}

function fieldIdOf(key) { return fields.find((el) => el.dataset.key === key).id; }

function setBase(name) {
  base = { ...DEFAULTS };
  const raw = configs[name];
  if (raw) for (const key of Object.keys(DEFAULTS)) if (pick(raw, key) !== undefined) base[key] = pick(raw, key);
  for (const el of fields) el.value = base[el.dataset.key];
}

async function loadPage() {
  configs = await (await fetch("/api/configs")).json();
  for (const name of Object.keys(configs)) $("config").add(new Option(name, name));
  const params = new URLSearchParams(location.search);
  $("config").value = configs[params.get("config")] ? params.get("config") : "";
  setBase($("config").value);
  for (const el of fields) if (params.has(el.id)) el.value = params.get(el.id);
  showCommand();
  refreshRuns();
}

function encodeId(id) { return id.split("/").map(encodeURIComponent).join("/"); }

async function startRun(event) {
  event.preventDefault();
  const query = new URLSearchParams();
  if ($("config").value) query.set("config", $("config").value);
  if ($("overwrite").checked) query.set("overwrite", "true");
  const r = await fetch(`/api/runs?${query}`, {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(nested(changed())),
  });
  const body = await r.json();
  if (r.status !== 202) {
    const detail = Array.isArray(body.detail) ? body.detail.map((d) => d.msg || d).join("; ") : body.detail;
    return setStatus(`not started (${r.status}): ${detail}`, "failed");
  }
  run = body;
  $("command").textContent = body.command;
  follow(body.id);
}

function follow(id) {
  if (source) source.close();
  live = { steps: [], epochs: [], health: null, weights: null, stepsPerEpoch: 1, dataset: $("dataset").value, seen: {} };
  $("verdicts").replaceChildren();
  $("result").hidden = true;
  setStatus(`starting ${id}`, "running");
  $("train").disabled = true;
  $("stop").disabled = false;
  source = new EventSource(`/api/runs/${encodeId(id)}/events`);
  const on = (name, handle) => source.addEventListener(name, (e) => { handle(JSON.parse(e.data)); redraw(); });
  on("started", (d) => { live.stepsPerEpoch = d.steps_per_epoch; setStatus(`training ${d.parameters.toLocaleString()} parameters on ${d.device} into ${d.out_dir}`, "running"); });
  on("step", (d) => { live.steps.push([d.global_step, d.loss]); setProgress(d.epoch, d.step); });
  on("health", (d) => { live.health = d; });
  on("epoch", (d) => { live.epochs.push([d.global_step, d.val_accuracy ?? d.train_accuracy]); setProgress(d.epoch, d.step); });
  on("weights", (d) => { live.weights = d; setProgress(d.epoch, d.step); });
  on("verdicts", showVerdicts);
  on("test", (d) => { $("test").textContent = `test accuracy ${(100 * d.accuracy).toFixed(2)}% (the model of epoch ${d.epoch})`; });
  on("end", (d) => finish(id, d));
  source.onerror = () => { if (source.readyState === EventSource.CLOSED) finish(id, { status: "failed", message: "the stream broke" }); };
}

function setStatus(text, status) { $("status").textContent = text; $("status").dataset.status = status; }

function setProgress(epoch, step) { $("progress").textContent = `epoch ${epoch}, step ${step}`; }

async function finish(id, end) {
  source.close();
  $("train").disabled = false;
  $("stop").disabled = true;
  setStatus(`${end.status}${end.message ? ": " + end.message : ""}`, end.status);
  refreshRuns();
  if (end.status !== "finished") return;
  const details = await (await fetch(`/api/runs/${encodeId(id)}`)).json();
  if (details.summary) showSummary(details.summary, details.result);
}

function showVerdicts(list) {
  $("verdicts").replaceChildren(...list.map((v) => {
    const li = document.createElement("li");
    li.className = v.severity;
    li.dataset.code = v.code;
    li.dataset.epochs = live.seen[v.code] ??= live.epochs.length; // epochs seen when this verdict first came (its text may change later)
    li.textContent = `${v.message}: ${v.suggestion}`;
    return li;
  }));
}

function showSummary(summary, result) {
  $("result").hidden = false;
  const n = summary.confusion.flat().reduce((a, b) => a + b, 0);
  const right = summary.confusion.reduce((sum, row, i) => sum + row[i], 0);
  $("test").textContent = `${right.toLocaleString()} of ${n.toLocaleString()} right: test accuracy ${(100 * result.test_accuracy).toFixed(2)}%`;
  const head = `<tr><th>true \\ said</th>${summary.classes.map((c) => `<th>${esc(c)}</th>`).join("")}</tr>`;
  const rows = summary.confusion.map((row, i) =>
    `<tr><th>${esc(summary.classes[i])}</th>${row.map((v, j) => `<td class="${i === j ? "right" : ""}">${v}</td>`).join("")}</tr>`);
  $("confusion").innerHTML = head + rows.join("");
  $("mistakes").replaceChildren(...summary.mistakes.map((m) => {
    const fig = document.createElement("figure");
    if (m.pixels) fig.append(grayCanvas(m.pixels));
    const cap = document.createElement("figcaption");
    cap.textContent = `${summary.classes[m.label]} read as ${summary.classes[m.predicted]} (${(100 * m.confidence).toFixed(0)}%)`;
    fig.append(cap);
    return fig;
  }));
}

function grayCanvas(pixels) {
  const side = Math.round(Math.sqrt(pixels.length)), c = document.createElement("canvas");
  c.width = c.height = side;
  const ctx = c.getContext("2d"), img = ctx.createImageData(side, side), max = Math.max(...pixels) || 1;
  pixels.forEach((v, i) => { const g = 255 - Math.round((255 * v) / max); img.data.set([g, g, g, 255], 4 * i); });
  ctx.putImageData(img, 0, 0);
  return c;
}

// --- pictures ------------------------------------------------------------------------------------------------------

let pending = false;
function redraw() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => { pending = false; drawCurves(); drawHealth(); drawWeights(); });
}

function axes(ctx, w, h) { ctx.clearRect(0, 0, w, h); ctx.strokeStyle = "#999"; ctx.strokeRect(40, 10, w - 80, h - 40); }

function drawLine(ctx, points, xmax, ymax, color, box, dots = false) {
  const [x0, y0, w, h] = box, size = points.length > 50 ? 2 : 6;
  ctx.strokeStyle = ctx.fillStyle = color;
  ctx.beginPath();
  points.forEach(([x, y], i) => {
    if (y == null) return;
    const px = x0 + (w * x) / xmax, py = y0 + h - (h * Math.min(y, ymax)) / ymax;
    if (dots) ctx.fillRect(px - size / 2, py - size / 2, size, size);
    else i ? ctx.lineTo(px, py) : ctx.moveTo(px, py);
  });
  if (!dots) ctx.stroke();
}

function drawCurves() {
  const c = $("curves"), ctx = c.getContext("2d"), box = [40, 10, c.width - 80, c.height - 40];
  axes(ctx, c.width, c.height);
  const xmax = Math.max(1, ...live.steps.map((p) => p[0]), ...live.epochs.map((p) => p[0]));
  const ymax = Math.max(1e-9, ...live.steps.map((p) => p[1] ?? 0)) * 1.05;
  drawLine(ctx, live.steps, xmax, ymax, COLORS[0], box);
  drawLine(ctx, live.epochs, xmax, 1, COLORS[1], box, true);
  ctx.fillStyle = "#333";
  ctx.fillText(`loss ${ymax.toPrecision(2)}`, 2, 18);
  ctx.fillText("acc 1", c.width - 36, 18);
  ctx.fillText(`step ${xmax}`, c.width - 100, c.height - 12);
  const last = live.steps.at(-1);
  if (last) ctx.fillText(`loss ${last[1]?.toFixed(4)} at step ${last[0]}`, 50, c.height - 12);
}

function drawHealth() {
  const c = $("health"), ctx = c.getContext("2d");
  ctx.clearRect(0, 0, c.width, c.height);
  if (!live.health) return;
  const layers = live.health.layers, row = Math.min(28, (c.height - 30) / layers.length);
  const lo = -8, hi = 2, x0 = 80, w = c.width - 240; // log10 of the gradient norm, 1e-8 .. 1e2
  ctx.fillStyle = "#333";
  ctx.fillText(`epoch ${live.health.epoch}, step ${live.health.step}   1e${lo} ... 1e${hi}`, x0, 12);
  layers.forEach((layer, i) => {
    const y = 20 + i * row, g = layer.grad_norm;
    const share = layer.dead_fraction ?? layer.saturated_fraction;
    ctx.fillStyle = "#333";
    ctx.fillText(layer.name, 4, y + row / 2 + 4);
    ctx.fillStyle = (layer.grad_ratio ?? 1) < 1e-3 ? "#d62728" : COLORS[0];
    if (g) ctx.fillRect(x0, y + 2, (w * (Math.max(lo, Math.min(hi, Math.log10(g))) - lo)) / (hi - lo), row - 4);
    ctx.fillStyle = "#333";
    const what = layer.dead_fraction != null ? "dead" : "saturated";
    ctx.fillText(`${g ? g.toExponential(1) : "n/a"}${share != null ? `  ${what} ${(100 * share).toFixed(0)}%` : ""}`, x0 + w + 6, y + row / 2 + 4);
  });
}

function drawWeights() {
  const d = live.weights;
  if (!d) return;
  $("tiles-figure").hidden = !d.tiles;
  $("boundary-figure").hidden = $("units-figure").hidden = !d.boundary;
  if (d.tiles) drawTiles(d.tiles, d.side);
  if (d.boundary) { drawBoundary(d.boundary); drawUnits(d.units); }
}

function drawTiles(tiles, side) {
  const c = $("tiles"), ctx = c.getContext("2d"), scale = side === 8 ? 6 : 2, cell = side * scale + 4;
  const per = Math.floor(c.width / cell);
  c.height = Math.ceil(tiles.length / per) * cell;
  tiles.forEach((w, t) => {
    const m = Math.max(...w.map(Math.abs)) || 1, img = ctx.createImageData(side * scale, side * scale);
    for (let y = 0; y < side * scale; y++) for (let x = 0; x < side * scale; x++) {
      const v = w[Math.floor(y / scale) * side + Math.floor(x / scale)] / m;
      img.data.set(v > 0 ? [255, 255 * (1 - v), 255 * (1 - v), 255] : [255 * (1 + v), 255 * (1 + v), 255, 255], 4 * (y * side * scale + x));
    }
    ctx.putImageData(img, (t % per) * cell, Math.floor(t / per) * cell);
  });
}

function heat(canvas, grid, color) {
  const n = grid.length, ctx = canvas.getContext("2d"), img = ctx.createImageData(n, n);
  grid.forEach((row, r) => row.forEach((v, col) => img.data.set([...color(v), 255], 4 * ((n - 1 - r) * n + col))));
  const tmp = document.createElement("canvas");
  tmp.width = tmp.height = n;
  tmp.getContext("2d").putImageData(img, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(tmp, 0, 0, canvas.width, canvas.height);
}

// P(1): blue (0) through white to orange (1), as TensorFlow Playground colours its outputs
const playground = (p) => (p < 0.5 ? [255 - 200 * (0.5 - p), 255 - 120 * (0.5 - p) * 2, 255] : [255, 255 - 130 * (p - 0.5) * 2, 255 - 255 * (p - 0.5) * 2]);

function drawBoundary(grid) {
  const c = $("boundary"), ctx = c.getContext("2d");
  heat(c, grid, playground);
  const label = TABLES[live.dataset], n = grid.length;
  if (!label) return;
  let right = 0;
  for (const [a, b] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
    const px = ((a + 0.25) / 1.5) * c.width, py = c.height - ((b + 0.25) / 1.5) * c.height;
    const col = Math.round(((a + 0.25) / 1.5) * (n - 1)), row = Math.round(((b + 0.25) / 1.5) * (n - 1));
    const said = grid[row][col] > 0.5 ? 1 : 0;
    right += said === label(a, b);
    ctx.beginPath();
    ctx.arc(px, py, 9, 0, 2 * Math.PI);
    ctx.fillStyle = label(a, b) ? "#e6550d" : "#3182bd";
    ctx.fill();
    ctx.lineWidth = 3;
    ctx.strokeStyle = said === label(a, b) ? "#fff" : "#d00";
    ctx.stroke();
  }
  c.dataset.right = right;
  $("boundary-figure").querySelector("figcaption").textContent = `P(class 1) over the input square: ${right} of 4 points right`;
}

function drawUnits(units) {
  const box = $("units");
  while (box.children.length < units.length) box.append(Object.assign(document.createElement("canvas"), { width: 80, height: 80 }));
  while (box.children.length > units.length) box.lastChild.remove();
  units.forEach((grid, i) => {
    const flat = grid.flat(), lo = Math.min(...flat), hi = Math.max(...flat), span = hi - lo || 1;
    heat(box.children[i], grid, (v) => { const t = (v - lo) / span; return [255 * t, 180 * t + 40, 255 * (1 - t)]; });
  });
}

// --- runs ------------------------------------------------------------------------------------------------------

async function refreshRuns() {
  const runs = await (await fetch("/api/runs")).json();
  $("runs").tBodies[0].replaceChildren(...runs.map((r) => {
    const tr = document.createElement("tr");
    const acc = r.result ? `${(100 * r.result.test_accuracy).toFixed(2)}%` : "";
    tr.innerHTML = `<td><input type="checkbox"></td><td class="id"></td><td>${r.status}</td><td>${acc}</td>`;
    tr.querySelector(".id").textContent = r.id;
    tr.querySelector("input").value = r.id;
    return tr;
  }));
}

async function compareChosen() {
  const ids = [...$("runs").querySelectorAll("input:checked")].map((el) => el.value);
  const r = await fetch(`/api/compare?${ids.map((id) => "run=" + encodeURIComponent(id)).join("&")}`);
  const body = await r.json();
  $("comparison").hidden = false;
  const c = $("overlay"), ctx = c.getContext("2d"), box = [40, 10, c.width - 80, c.height - 40];
  axes(ctx, c.width, c.height);
  if (r.status !== 200) { ctx.fillText(Array.isArray(body.detail) ? body.detail.join("; ") : body.detail, 50, 40); return; }
  const xmax = Math.max(1, ...body.runs.flatMap((run) => run.epochs.map((e) => e[0])));
  body.runs.forEach((run, i) => {
    drawLine(ctx, run.epochs.map((e) => [e[0], e[1]]), xmax, 1, COLORS[i % COLORS.length], box);
    drawLine(ctx, run.epochs.map((e) => [e[0], e[1]]), xmax, 1, COLORS[i % COLORS.length], box, true);
  });
  ctx.fillStyle = "#333";
  ctx.fillText("accuracy per epoch (validation; training for the truth tables)", 50, 24);
  const keys = body.differing_keys;
  const head = `<tr><th>run</th>${keys.map((k) => `<th>${esc(k)}</th>`).join("")}<th>test accuracy</th></tr>`;
  $("differing").innerHTML = head + body.runs.map((run, i) =>
    `<tr><td style="color:${COLORS[i % COLORS.length]}">■ ${esc(run.id)}</td>${keys.map((k) => `<td>${esc(typeof run.settings[k] === "string" ? run.settings[k] : JSON.stringify(run.settings[k]))}</td>`).join("")}` +
    `<td>${run.test_accuracy == null ? "n/a" : (100 * run.test_accuracy).toFixed(2) + "%"}</td></tr>`).join("");
}

$("settings").addEventListener("submit", startRun);
$("settings").addEventListener("input", (e) => { if (e.target.id === "config") setBase(e.target.value); showCommand(); });
$("stop").addEventListener("click", () => run && fetch(`/api/runs/${encodeId(run.id)}`, { method: "DELETE" }));
$("refresh").addEventListener("click", refreshRuns);
$("compare").addEventListener("click", compareChosen);
loadPage();
