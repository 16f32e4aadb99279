// The draw-a-digit page: strokes on a canvas, sent as a PNG to /api/predict (debounced) while you draw.
// The server prepares the PNG exactly as `mnist predict` prepares a file; this page only draws and shows.
"use strict";

const PEN = 20;            // px on the 280 px canvas: strokes about as thick, relative to the digit, as MNIST's
const DEBOUNCE_MS = 120;   // wait this long after the last stroke movement before asking again

const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const result = document.getElementById("result");
const predictionEl = document.getElementById("prediction");
const confidenceEl = document.getElementById("confidence");
const bars = document.getElementById("bars");
const inputImg = document.getElementById("input");
const message = document.getElementById("message");
const chooser = document.getElementById("run");  // "": the served checkpoint, else a run under the checkpoint folder

let classes = ["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"];
let hasInk = false;     // a blank canvas is never sent: it shows "draw a digit"
let drawing = null;     // the pointerId of the stroke being drawn
let last = null;        // the stroke's previous point
let timer = null;
let seq = 0;            // each request's number; only the newest one's answer is shown
let inFlight = 0;

function setBusy() {
  // For people reading the DOM (and the browser tests): "1" while an answer is still coming.
  document.body.dataset.busy = (timer !== null || inFlight > 0) ? "1" : "0";
}

function blank() {
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
}

function showEmpty() {
  result.dataset.status = "empty";
  result.classList.remove("uncertain");
  delete result.dataset.digit;
  predictionEl.textContent = "draw a digit";
  confidenceEl.textContent = "";
  inputImg.removeAttribute("src");
  renderBars(null, -1);
}

function renderBars(probabilities, top) {
  bars.replaceChildren(...classes.map((name, i) => {
    const li = document.createElement("li");
    const p = probabilities ? probabilities[i] : 0;
    li.className = i === top ? "top" : "";
    li.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="value"></span>';
    li.querySelector(".name").textContent = name;
    li.querySelector(".fill").style.width = (100 * p).toFixed(1) + "%";
    li.querySelector(".value").textContent = probabilities ? (100 * p).toFixed(1) + "%" : "";
    return li;
  }));
}

function showPrediction(r) {
  result.dataset.status = "done";
  result.dataset.digit = String(r.prediction);
  result.classList.toggle("uncertain", r.uncertain);
  predictionEl.textContent = r.label;
  confidenceEl.textContent = (100 * r.probability).toFixed(1) + "%" + (r.uncertain ? " (uncertain)" : "");
  inputImg.src = "data:image/png;base64," + r.input;
  renderBars(r.probabilities, r.prediction);
}

async function send(blob, filename) {
  const mine = ++seq;
  inFlight++;
  setBusy();
  const form = new FormData();
  form.append("image", blob, filename);
  try {
    const response = await fetch(withRun("/api/predict"), { method: "POST", body: form });
    const body = await response.json().catch(() => ({}));  // a proxy's or uvicorn's own error page is not JSON
    if (mine !== seq) return;  // a newer drawing (or a clear) came after this one
    if (response.ok) {
      message.textContent = "";
      showPrediction(body);
    } else {  // every refusal says why, in the server's words: no digit found, too large, ...
      showEmpty();
      result.dataset.status = "error";
      predictionEl.textContent = "no prediction";
      message.textContent = typeof body.detail === "string" ? body.detail : response.status + " " + response.statusText;
    }
  } catch (err) {
    if (mine === seq) message.textContent = "cannot reach the server (" + err.message + ")";
  } finally {
    inFlight--;
    setBusy();
  }
}

function predictCanvas() {
  timer = null;
  if (!hasInk) { showEmpty(); setBusy(); return; }
  canvas.toBlob((blob) => send(blob, "canvas.png"), "image/png");
}

function schedule() {
  if (timer !== null) clearTimeout(timer);
  timer = setTimeout(predictCanvas, DEBOUNCE_MS);
  setBusy();
}

function point(e) {
  const box = canvas.getBoundingClientRect();  // includes the border; clientLeft/Top is the border's width
  const x = (e.clientX - box.left - canvas.clientLeft) * canvas.width / canvas.clientWidth;
  const y = (e.clientY - box.top - canvas.clientTop) * canvas.height / canvas.clientHeight;
  return [x, y];
}

function lineTo(p) {
  ctx.beginPath();
  ctx.moveTo(last[0], last[1]);
  ctx.lineTo(p[0], p[1]);
  ctx.stroke();
  last = p;
}

canvas.addEventListener("pointerdown", (e) => {
  if (e.button !== 0 || drawing !== null) return;
  drawing = e.pointerId;
  canvas.setPointerCapture(e.pointerId);
  ctx.strokeStyle = "#000";
  ctx.fillStyle = "#000";
  ctx.lineWidth = PEN;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
  last = point(e);
  ctx.beginPath();
  ctx.arc(last[0], last[1], PEN / 2, 0, 2 * Math.PI);  // a tap leaves a dot
  ctx.fill();
  hasInk = true;
  message.textContent = "";
  schedule();
});

canvas.addEventListener("pointermove", (e) => {
  if (e.pointerId !== drawing) return;
  const events = e.getCoalescedEvents ? e.getCoalescedEvents() : [e];
  for (const ev of (events.length ? events : [e])) lineTo(point(ev));
  schedule();
});

function endStroke(e) {
  if (e.pointerId !== drawing) return;
  drawing = null;
  schedule();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

document.getElementById("clear").addEventListener("click", () => {
  seq++;  // answers still on their way are for the old drawing
  if (timer !== null) { clearTimeout(timer); timer = null; }
  blank();
  hasInk = false;
  message.textContent = "";
  showEmpty();
  setBusy();
});

document.getElementById("upload").addEventListener("change", (e) => {
  const file = e.target.files[0];
  if (!file) return;
  if (timer !== null) { clearTimeout(timer); timer = null; }
  blank();  // the answer is for the file, sent as it is, not for the canvas
  hasInk = false;
  send(file, file.name);
  e.target.value = "";
});

function showCollect() {
  // serve --collect DIR: one button per class saves the canvas as DIR/<label>/drawing-N.png
  const row = document.getElementById("collect");
  row.replaceChildren(...classes.map((name) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = "save as " + name;
    b.addEventListener("click", () => canvas.toBlob(async (blob) => {
      const form = new FormData();
      form.append("image", blob, "canvas.png");
      try {
        const r = await fetch("/api/collect/" + encodeURIComponent(name), { method: "POST", body: form });
        const body = await r.json().catch(() => ({}));
        message.textContent = r.ok ? "saved " + body.saved : (body.detail || r.status + " " + r.statusText);
      } catch (err) {
        message.textContent = "cannot reach the server (" + err.message + ")";
      }
    }, "image/png"));
    return b;
  }));
  row.hidden = false;
}

async function loadModel() {
  const el = document.getElementById("model");
  try {
    const m = await (await fetch(withRun("/api/model"))).json();
    if (!m.classes) throw new Error(m.detail);
    classes = m.classes;
    if (m.collect) showCollect();
    const acc = m.test_accuracy === null ? "not yet tested" : "test accuracy " + (100 * m.test_accuracy).toFixed(2) + "%";
    el.textContent = m.checkpoint + " \u2014 " + m.architecture + ", " + m.parameters.toLocaleString("en") + " parameters, " + acc;
  } catch (err) {
    el.textContent = "cannot load the model's description (" + err.message + ")";
  }
  if (result.dataset.status === "empty") renderBars(null, -1);
}

function withRun(url) {
  return chooser.value ? url + "?run=" + encodeURIComponent(chooser.value) : url;
}

async function loadRuns(wanted = null) {
  // Finished runs that read images (a truth table's first layer has 2 inputs), trained here or by `mnist train`.
  const runs = await (await fetch("/api/runs")).json();
  const usable = runs.filter((r) => r.result && !r.result.model.startsWith("2-"));
  const keep = wanted ?? chooser.value;  // read after the answer: a choice made meanwhile stands
  chooser.replaceChildren(chooser.options[0], ...usable.map((r) => new Option(`${r.id} (${r.result.model})`, r.id)));
  chooser.value = usable.some((r) => r.id === keep) ? keep : "";
}

chooser.addEventListener("focus", () => loadRuns().catch(() => {}));
chooser.addEventListener("change", async () => {
  await loadModel();
  if (hasInk) schedule();  // the drawing, read by the chosen model
});

blank();
showEmpty();
setBusy();
loadRuns(new URLSearchParams(location.search).get("run")).catch(() => {}).then(loadModel);
