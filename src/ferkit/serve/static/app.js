// ferkit web page: a photo or webcam frames go to POST /v1/detect; boxes, labels and probability bars are
// drawn on a canvas over the picture. Plain JavaScript, no build step. window.ferkit holds the last answer
// (tests read it, and the drawn page).
"use strict";

const COLORS = {
  angry: "#e53935", disgust: "#43a047", fear: "#8e24aa", happy: "#fdd835",
  sad: "#1e88e5", surprise: "#fb8c00", neutral: "#9e9e9e",
};
const MAX_FRAME = 640;          // webcam frames are sent at most this wide/high, as JPEG
const state = window.ferkit = { last: null, frames: 0, drawnFaces: 0, error: null, running: false };

const $ = (id) => document.getElementById(id);
const photo = $("photo"), video = $("video"), overlay = $("overlay");
let stream = null, fpsTimes = [];

function colorOf(label) { return COLORS[label] || "#00acc1"; }

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
  if (isError) state.error = text;
}

function headers() {
  const key = $("api-key").value || sessionStorage.getItem("ferkit-key") || "";
  return key ? { "X-API-Key": key } : {};
}

async function detect(blob, filename) {
  const form = new FormData();
  form.append("image", blob, filename);
  const detector = $("detector").value;
  const url = "/v1/detect?top_k=3" + (detector ? "&detector=" + encodeURIComponent(detector) : "");
  const response = await fetch(url, { method: "POST", body: form, headers: headers() });
  let body;
  try { body = await response.json(); } catch (e) { body = { error: response.statusText }; }
  if (!response.ok) throw new Error(body.error || ("HTTP " + response.status));
  return body;
}

// Draw the faces of `result` on the overlay; `scale` maps the sent image's pixels to the shown media's.
function draw(result, width, height, scale) {
  overlay.width = width;
  overlay.height = height;
  const ctx = overlay.getContext("2d");
  ctx.clearRect(0, 0, width, height);
  const unit = Math.max(12, Math.round(Math.min(width, height) / 40));
  ctx.font = `bold ${unit}px system-ui, sans-serif`;
  ctx.textBaseline = "top";
  result.faces.forEach((face, i) => {
    const [x1, y1, x2, y2] = face.box.map((v) => v * scale);
    const color = colorOf(face.label);
    ctx.lineWidth = Math.max(2, unit / 5);
    ctx.strokeStyle = color;
    ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
    const text = `${i + 1} ${face.label} ${Math.round(face.probs[face.label] * 100)}%`;
    const tw = ctx.measureText(text).width + unit / 2;
    const ty = y1 - unit * 1.4 >= 0 ? y1 - unit * 1.4 : y1;
    ctx.fillStyle = color;
    ctx.fillRect(x1, ty, tw, unit * 1.4);
    ctx.fillStyle = "#000";
    ctx.fillText(text, x1 + unit / 4, ty + unit * 0.2);
    // probability bars of the top classes, under the box (or inside it at the bottom edge)
    const barH = unit * 0.9, barW = Math.max(x2 - x1, unit * 8);
    let by = Math.min(y2 + unit * 0.3, height - barH * face.top_k.length);
    ctx.font = `${Math.round(unit * 0.75)}px system-ui, sans-serif`;
    for (const { label, prob } of face.top_k) {
      ctx.fillStyle = "rgba(0,0,0,0.55)";
      ctx.fillRect(x1, by, barW, barH);
      ctx.fillStyle = colorOf(label);
      ctx.fillRect(x1, by, barW * prob, barH);
      ctx.fillStyle = "#fff";
      ctx.fillText(`${label} ${prob.toFixed(2)}`, x1 + 3, by + 1);
      by += barH + 1;
    }
    ctx.font = `bold ${unit}px system-ui, sans-serif`;
  });
  state.last = result;
  state.drawnFaces = result.faces.length;
  state.frames += 1;
  listFaces(result);
}

function listFaces(result) {
  const list = $("faces");
  list.replaceChildren();
  for (const face of result.faces) {
    const item = document.createElement("li");
    item.className = "face";
    item.dataset.label = face.label;
    const title = document.createElement("span");
    title.className = "face-label";
    title.textContent = `${face.label} ${face.probs[face.label].toFixed(2)}`;
    item.append(title);
    const bars = document.createElement("ul");
    bars.className = "bars";
    const ranked = Object.entries(face.probs).sort((a, b) => b[1] - a[1]);
    for (const [label, prob] of ranked) {
      const row = document.createElement("li");
      const name = document.createElement("span");
      name.textContent = label;
      const track = document.createElement("span");
      track.className = "track";
      const fill = document.createElement("span");
      fill.className = "fill";
      fill.style.display = "block";
      fill.style.width = `${(prob * 100).toFixed(1)}%`;
      fill.style.background = colorOf(label);
      track.append(fill);
      const value = document.createElement("span");
      value.className = "prob";
      value.textContent = prob.toFixed(2);
      row.append(name, track, value);
      bars.append(row);
    }
    item.append(bars);
    list.append(item);
  }
}

function tick() {
  const now = performance.now();
  fpsTimes.push(now);
  fpsTimes = fpsTimes.filter((t) => now - t < 2000);
  const fps = fpsTimes.length > 1 ? (fpsTimes.length - 1) / ((now - fpsTimes[0]) / 1000) : 0;
  $("fps").textContent = `${fps.toFixed(1)} fps`;
}

async function onFile(event) {
  const file = event.target.files[0];
  if (!file) return;
  stopWebcam();
  photo.hidden = false;
  video.hidden = true;
  const url = URL.createObjectURL(file);
  photo.src = url;
  await photo.decode().catch(() => {});
  setStatus(`Looking for faces in ${file.name}…`);
  try {
    const t0 = performance.now();
    const result = await detect(file, file.name);  // the file itself, so the answer is the CLI's
    draw(result, photo.naturalWidth || result.shape[1], photo.naturalHeight || result.shape[0], 1);
    const ms = Math.round(performance.now() - t0);
    setStatus(`${result.faces.length} face(s) in ${file.name} (${ms} ms; model ${result.model}).`);
    $("fps").textContent = `${ms} ms`;
  } catch (e) {
    setStatus(`${file.name}: ${e.message}`, true);
  }
}

function grab(canvas) {
  const w = video.videoWidth, h = video.videoHeight;
  const s = Math.min(1, MAX_FRAME / Math.max(w, h));
  canvas.width = Math.round(w * s);
  canvas.height = Math.round(h * s);
  canvas.getContext("2d").drawImage(video, 0, 0, canvas.width, canvas.height);
  return new Promise((resolve) => canvas.toBlob((blob) => resolve([blob, s]), "image/jpeg", 0.85));
}

async function startWebcam() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    setStatus("This browser gives no camera to this page (it needs http://localhost or https).", true);
    return;
  }
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: { ideal: 640 } }, audio: false });
  } catch (e) {
    setStatus(`No camera: ${e.message}`, true);
    return;
  }
  video.srcObject = stream;
  photo.hidden = true;
  video.hidden = false;
  await video.play();
  state.running = true;
  $("webcam").disabled = true;
  $("stop").disabled = false;
  setStatus("Webcam on: each frame goes to the server when the previous answer is back.");
  const canvas = document.createElement("canvas");
  fpsTimes = [];
  while (state.running) {
    if (!video.videoWidth) { await new Promise((r) => setTimeout(r, 50)); continue; }
    const [blob, s] = await grab(canvas);
    try {
      const result = await detect(blob, "frame.jpg");
      if (!state.running) break;
      draw(result, video.videoWidth, video.videoHeight, 1 / s);
      tick();
    } catch (e) {
      setStatus(`Frame refused: ${e.message}`, true);
      await new Promise((r) => setTimeout(r, 500));  // e.g. 503 busy: wait, then go on
    }
  }
}

function stopWebcam() {
  state.running = false;
  if (stream) stream.getTracks().forEach((t) => t.stop());
  stream = null;
  $("webcam").disabled = false;
  $("stop").disabled = true;
}

async function init() {
  $("file").addEventListener("change", onFile);
  $("webcam").addEventListener("click", startWebcam);
  $("stop").addEventListener("click", () => { stopWebcam(); setStatus("Webcam off."); });
  $("api-key").addEventListener("change", (e) => sessionStorage.setItem("ferkit-key", e.target.value));
  try {
    const health = await (await fetch("/healthz")).json();
    $("key-box").hidden = !health.api_key_required;
    setStatus(`Ready: model ${health.model}, ${health.workers} worker(s).`);
  } catch (e) {
    setStatus(`Server not reachable: ${e.message}`, true);
  }
}

init();
