// kinema playground: a client of the public API, nothing more.
//
// Jobs are created through the dialect each model speaks, then followed with the
// /v1/video/generations event stream and cancelled there (that dialect reads any job of
// the key); the history is GET /v1/videos, which lists every job of the key. The form is
// kept in localStorage across reloads; the last create can be copied as curl or Python.
"use strict";

const KEY_STORAGE = "kinema.apiKey";
const SELECTED_STORAGE = "kinema.selectedJob";
const FORM_STORAGE = "kinema.form";
const KEPT_IMAGE_CHARS = 1_500_000; // a dropped picture is kept across reloads up to this size
const HISTORY_LIMIT = 30;
const TERMINAL = new Set(["succeeded", "failed", "cancelled", "expired"]);

const $ = (id) => document.getElementById(id);

const state = {
  key: localStorage.getItem(KEY_STORAGE) || "",
  models: [],
  images: { image: null, last_image: null, reference_images: [] },
  selected: null, // hex job id shown in the job panel
  followers: new Map(), // hex job id -> AbortController of its event stream
  thumbs: new Map(), // hex job id -> object URL
  focus: new Map(), // hex job id -> {x, y}: where its thumbnail's subject is (0..1)
  sent: null, // the last request with a body: {method, path, body}
  recommended: null, // the model id the server recommends
};

// --- the API ---

class ApiError extends Error {
  constructor(status, body, retryAfter) {
    super(describeError(status, body, retryAfter));
    this.status = status;
    this.body = body;
  }
}

function describeError(status, body, retryAfter) {
  // Each dialect's envelope: {"error": {...}} or {message, details} (AI/ML API).
  const error = body && typeof body === "object" ? body.error || body : null;
  let text = `HTTP ${status}`;
  if (error && error.message) text += `: ${error.message}`;
  else if (typeof body === "string" && body) text += `: ${body}`;
  const details = error && (error.details || body.details);
  if (Array.isArray(details)) {
    for (const item of details) {
      const where = Array.isArray(item.path) ? item.path.join(".") : item.param || "";
      text += `\n- ${where ? where + ": " : ""}${item.message}`;
    }
  }
  if (retryAfter) text += `\n(retry after ${retryAfter} s)`;
  return text;
}

async function api(path, { method = "GET", body, raw = false } = {}) {
  const headers = { Authorization: `Bearer ${state.key}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (body !== undefined) state.sent = { method, path, body };
  const response = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!response.ok) {
    const text = await response.text();
    let parsed = text;
    try { parsed = JSON.parse(text); } catch (_) { /* not JSON: show as is */ }
    throw new ApiError(response.status, parsed, response.headers.get("Retry-After"));
  }
  return raw ? response : response.json();
}

// --- dialects: how each speaks a create, and the job id its answer carries ---

const BASE32 = "abcdefghijklmnopqrstuvwxyz234567";

const DIALECTS = {
  v1: {
    fields: ["image", "last_image", "duration", "aspect_ratio", "resolution", "generate_audio",
      "seed", "negative_prompt"],
    create(model, f) {
      const body = { model, prompt: f.prompt };
      const images = [f.image, f.last_image].filter(Boolean);
      if (images.length) body.images = images;
      if (f.duration !== undefined) body.seconds = f.duration;
      if (f.resolution !== undefined) body.size = f.resolution;
      copy(f, body, ["aspect_ratio", "generate_audio", "seed", "negative_prompt"]);
      return api("/v1/video/generations", { method: "POST", body });
    },
    async jobId(answer) { return answer.id.replace(/^task_/, ""); },
  },
  aimlapi: {
    fields: ["image", "last_image", "reference_images", "duration", "aspect_ratio",
      "resolution", "generate_audio", "seed", "negative_prompt"],
    create(model, f) {
      const body = { model, prompt: f.prompt };
      if (f.image) body.image_url = f.image;
      if (f.last_image) body.last_image_url = f.last_image;
      if (f.reference_images && f.reference_images.length) body.image_urls = f.reference_images;
      copy(f, body, ["duration", "aspect_ratio", "resolution", "generate_audio", "seed",
        "negative_prompt"]);
      return api("/v2/video/generations", { method: "POST", body });
    },
    async jobId(answer) { return answer.id.split(":")[0].replace(/-/g, ""); },
  },
  unified: {
    fields: ["image", "duration", "aspect_ratio", "resolution", "generate_audio", "seed",
      "negative_prompt"],
    create(model, f) {
      const body = { model, prompt: f.prompt };
      if (f.image) body.image_url = f.image;
      copy(f, body, ["duration", "aspect_ratio", "resolution", "generate_audio", "seed",
        "negative_prompt"]);
      return api("/v1/videos/generations", { method: "POST", body });
    },
    async jobId(answer) {
      // The id carries the job id's first 40 bits; the key's video list has the rest.
      const chars = answer.id.split("-").pop();
      let bits = 0n;
      for (const c of chars) bits = (bits << 5n) | BigInt(BASE32.indexOf(c));
      const head = bits.toString(16).padStart(10, "0");
      const page = await api("/v1/videos?limit=100");
      const match = page.data.find((v) => v.id.startsWith(`video_${head}`));
      if (!match) throw new Error(`could not find the job of task ${answer.id}`);
      return match.id.replace(/^video_/, "");
    },
  },
  openai: {
    fields: ["image", "duration", "size", "generate_audio", "seed", "negative_prompt"],
    create(model, f) {
      const body = { model, prompt: f.prompt };
      if (f.image) body.input_reference = f.image;
      if (f.duration !== undefined) body.seconds = String(f.duration);
      copy(f, body, ["size", "generate_audio", "seed", "negative_prompt"]);
      return api("/v1/videos", { method: "POST", body });
    },
    async jobId(answer) { return answer.id.replace(/^video_/, ""); },
  },
};
const DIALECT_ORDER = ["v1", "aimlapi", "unified", "openai"];

function copy(from, to, names) {
  for (const name of names) if (from[name] !== undefined) to[name] = from[name];
}

function dialectOf(model) {
  return DIALECT_ORDER.find((d) => model.dialects.includes(d));
}

// --- the form ---

function currentModel() {
  return state.models.find((m) => m.id === $("model").value);
}

function shownFields(model) {
  const dialect = DIALECTS[dialectOf(model)];
  const fields = new Set(model.fields.filter((f) => dialect.fields.includes(f)));
  if (fields.has("size") && model.sizes.length) {
    fields.delete("aspect_ratio"); // a pixel size says both
    fields.delete("resolution");
  } else {
    fields.delete("size");
  }
  return fields;
}

function fillSelect(select, values, chosen) {
  const previous = select.value;
  select.replaceChildren(...values.map((v) => new Option(String(v), String(v))));
  const keep = values.map(String).includes(previous) ? previous : String(chosen ?? values[0]);
  select.value = keep;
}

function renderForm() {
  const model = currentModel();
  if (!model) return;
  const dialect = dialectOf(model);
  const fields = shownFields(model);
  for (const el of document.querySelectorAll("[data-field]")) {
    el.hidden = !fields.has(el.dataset.field);
  }
  const required = model.image_required ? "(required)" : "(optional)";
  for (const el of document.querySelectorAll(".image-field .req")) el.textContent = required;
  document.querySelector('[data-field="last_image"] .req').textContent =
    model.inputs === "first_last" ? "(required)" : "(optional)";
  fillSelect($("resolution"), model.resolutions, model.default_resolution);
  fillDurations();
  fillSelect($("aspect-ratio"), model.aspect_ratios, model.aspect_ratios[0]);
  fillSelect($("size"), model.sizes, model.sizes[0]);
  $("audio").checked = model.default_audio;
  $("model-note").textContent = `${model.description} - sent as the ${dialect} API`;
}

function fillDurations() {
  const model = currentModel();
  const narrowed = model.durations_at[$("resolution").value];
  fillSelect($("duration"), narrowed || model.durations, model.default_duration);
}

function readForm() {
  const model = currentModel();
  const fields = shownFields(model);
  const f = { prompt: $("prompt").value };
  const image = state.images.image || $("image-url").value.trim();
  const last = state.images.last_image || $("last-image-url").value.trim();
  if (fields.has("image") && image) f.image = image;
  if (fields.has("last_image") && last) f.last_image = last;
  if (fields.has("reference_images") && state.images.reference_images.length) {
    f.reference_images = state.images.reference_images;
  }
  if (fields.has("duration")) f.duration = Number($("duration").value);
  if (fields.has("resolution")) f.resolution = $("resolution").value;
  if (fields.has("aspect_ratio")) f.aspect_ratio = $("aspect-ratio").value;
  if (fields.has("size")) f.size = $("size").value;
  if (fields.has("generate_audio")) f.generate_audio = $("audio").checked;
  if (fields.has("seed") && $("seed").value !== "") f.seed = Number($("seed").value);
  if (fields.has("negative_prompt") && $("negative-prompt").value.trim()) {
    f.negative_prompt = $("negative-prompt").value.trim();
  }
  return { model, f };
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

function wireDrop(dropId, fileId, urlId, field) {
  const drop = $(dropId);
  const preview = drop.querySelector("img");
  const take = async (file) => {
    if (!file) return;
    state.images[field] = await readFile(file);
    preview.src = state.images[field];
    preview.hidden = false;
    $(urlId).value = "";
    saveForm();
  };
  $(fileId).addEventListener("change", (e) => take(e.target.files[0]));
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => {
    e.preventDefault();
    drop.classList.remove("over");
    take(e.dataTransfer.files[0]);
  });
  drop.addEventListener("keydown", (e) => { if (e.key === "Enter") $(fileId).click(); });
  $(urlId).addEventListener("input", () => {
    state.images[field] = null;
    preview.hidden = !$(urlId).value;
    preview.src = $(urlId).value;
  });
}

function showError(error) {
  $("error").textContent = error ? error.message || String(error) : "";
  $("error").hidden = !error;
}

async function submit(event) {
  event.preventDefault();
  showError(null);
  if (!state.key) { showError(new Error("Enter an API key first.")); return; }
  const { model, f } = readForm();
  $("submit").disabled = true;
  try {
    const dialect = DIALECTS[dialectOf(model)];
    state.sent = null;
    const answer = await dialect.create(model.id, f);
    showSent(state.sent);
    const id = await dialect.jobId(answer);
    select(id);
    await loadHistory();
  } catch (error) {
    showError(error);
  } finally {
    $("submit").disabled = false;
  }
}

// --- one job: live status from the event stream ---

function phaseOf(task) {
  switch (task.status) {
    case "queued":
      if (task.workers_online === 0) return "queued: no worker serves this model yet";
      return task.queue_position ? `queued (${task.queue_position} ahead)` : "queued";
    case "in_progress":
      return task.progress >= 97 ? "finishing (encoding, storing)" : "generating";
    default:
      return task.status;
  }
}

function showJob(task) {
  const id = task.id.replace(/^task_/, "");
  if (id !== state.selected) return;
  $("job").hidden = false;
  $("job-id").textContent = id;
  const percent = task.status === "succeeded" ? 100 : task.progress;
  $("phase").textContent = phaseOf(task);
  $("phase").dataset.status = task.status;
  $("progress").value = percent;
  $("percent").textContent = `${percent}%`;
  $("cancel").hidden = TERMINAL.has(task.status);
  $("job-json").textContent = JSON.stringify(task, null, 2);
  $("job-error").hidden = !task.error;
  $("job-error").textContent = task.error ? `${task.error.code}: ${task.error.message}` : "";
  const video = $("video");
  if (task.status === "succeeded" && task.url) {
    if (video.dataset.job !== id) {
      video.dataset.job = id;
      video.src = task.url;
      $("download").href = task.url;
      $("download").setAttribute("download", `${id}.mp4`);
      showThumbnail(id, $("thumbnail"));
    }
    $("result").hidden = false;
  } else {
    $("result").hidden = true;
    video.removeAttribute("src");
    delete video.dataset.job;
  }
  updateHistoryItem(task);
}

function select(id) {
  state.selected = id;
  localStorage.setItem(SELECTED_STORAGE, id);
  for (const li of $("history").children) li.classList.toggle("selected", li.dataset.id === id);
  $("job").hidden = false;
  $("job-id").textContent = id;
  $("phase").textContent = "connecting";
  delete $("phase").dataset.status;
  $("progress").value = 0;
  $("percent").textContent = "";
  $("result").hidden = true;
  follow(id);
}

async function follow(id) {
  if (state.followers.has(id)) {
    // Already streaming: show its latest state at once.
    try { showJob(await api(`/v1/video/generations/task_${id}`)); } catch (e) { showError(e); }
    return;
  }
  const controller = new AbortController();
  state.followers.set(id, controller);
  try {
    const response = await fetch(`/v1/video/generations/task_${id}/events`, {
      headers: { Authorization: `Bearer ${state.key}`, Accept: "text/event-stream" },
      signal: controller.signal,
    });
    if (!response.ok) {
      const text = await response.text();
      let body = text;
      try { body = JSON.parse(text); } catch (_) { /* as is */ }
      throw new ApiError(response.status, body);
    }
    await readEvents(response.body, (name, data) => {
      const task = JSON.parse(data);
      showJob(task);
      if (name === "done") loadHistory();
    });
  } catch (error) {
    if (error.name !== "AbortError" && id === state.selected) showError(error);
  } finally {
    state.followers.delete(id);
  }
}

async function readEvents(stream, onEvent) {
  // Server-sent events over fetch (EventSource cannot send the Authorization header).
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, data.join("\n"));
    }
  }
}

async function cancel(id) {
  showError(null);
  try {
    const task = await api(`/v1/video/generations/task_${id}/cancel`, { method: "POST" });
    showJob(task);
    await loadHistory();
  } catch (error) {
    showError(error);
  }
}

async function showThumbnail(id, img) {
  try {
    let url = state.thumbs.get(id);
    if (!url) {
      const response = await api(`/v1/videos/video_${id}/content?variant=thumbnail`, { raw: true });
      url = URL.createObjectURL(await response.blob());
      state.thumbs.set(id, url);
    }
    img.src = url;
    img.hidden = false;
    if (img.classList.contains("thumb")) await frameSubject(id, img);
  } catch (_) {
    img.hidden = true; // no thumbnail (not finished, or none made): nothing to show
  }
}

async function frameSubject(id, img) {
  // A tile crops the thumbnail to its own shape: keep the subject (a face, found by the
  // server) in view instead of the middle, which for a portrait video is the chest.
  await img.decode();
  const box = { w: img.clientWidth, h: img.clientHeight };
  const scale = Math.max(box.w / img.naturalWidth, box.h / img.naturalHeight);
  const spare = { w: img.naturalWidth * scale - box.w, h: img.naturalHeight * scale - box.h };
  if (spare.w < 1 && spare.h < 1) return; // nothing is cut off
  let point = state.focus.get(id);
  if (!point) {
    point = await api(`/playground/focus/${id}`);
    state.focus.set(id, point);
  }
  const place = (at, size, extra, length) =>
    extra < 1 ? 50 : Math.min(100, Math.max(0, ((at * size * scale - length / 2) / extra) * 100));
  const x = place(point.x, img.naturalWidth, spare.w, box.w);
  const y = place(point.y, img.naturalHeight, spare.h, box.h);
  img.style.objectPosition = `${x.toFixed(1)}% ${y.toFixed(1)}%`;
}

// --- history: every job of the key, newest first ---

const OPENAI_STATUS = { queued: "queued", in_progress: "in_progress", completed: "succeeded" };

function historyStatus(video) {
  if (video.status === "failed") return video.error && video.error.code === "cancelled" ? "cancelled" : "failed";
  return OPENAI_STATUS[video.status] || video.status;
}

async function loadHistory() {
  if (!state.key) return;
  try {
    const page = await api(`/v1/videos?limit=${HISTORY_LIMIT}`);
    renderHistory(page.data);
  } catch (error) {
    $("history").replaceChildren();
    $("history-empty").hidden = false;
    $("history-empty").textContent = error.message;
  }
}

function renderHistory(videos) {
  $("history-empty").hidden = videos.length > 0;
  $("history-empty").textContent = "No jobs yet for this key.";
  const items = videos.map((video) => {
    const id = video.id.replace(/^video_/, "");
    const status = historyStatus(video);
    const li = document.createElement("li");
    li.dataset.id = id;
    li.dataset.status = status;
    li.classList.toggle("selected", id === state.selected);
    const img = document.createElement("img");
    img.className = "thumb";
    img.alt = "";
    const meta = document.createElement("div");
    meta.className = "meta";
    const title = document.createElement("b");
    title.textContent = video.model;
    const line = document.createElement("span");
    line.className = `status status-${status}`;
    line.textContent = TERMINAL.has(status) ? status : `${status} ${video.progress}%`;
    const facts = document.createElement("div");
    const created = new Date(video.created_at * 1000);
    facts.textContent = `${video.seconds} s · ${video.size} · ${created.toLocaleString()}`;
    const prompt = document.createElement("div");
    prompt.textContent = video.prompt;
    meta.append(title, line, facts, prompt);
    if (!TERMINAL.has(status)) {
      const button = document.createElement("button");
      button.type = "button";
      button.className = "danger cancel";
      button.textContent = "Cancel";
      button.addEventListener("click", (e) => { e.stopPropagation(); cancel(id); });
      meta.append(button);
    }
    li.append(img, meta);
    li.addEventListener("click", () => select(id));
    if (status === "succeeded") showThumbnail(id, img);
    return li;
  });
  $("history").replaceChildren(...items);
}

function updateHistoryItem(task) {
  const id = task.id.replace(/^task_/, "");
  const li = $("history").querySelector(`li[data-id="${id}"]`);
  if (!li) return;
  const line = li.querySelector(".status");
  line.className = `status status-${task.status}`;
  line.textContent = TERMINAL.has(task.status) ? task.status : `${task.status} ${task.progress}%`;
  li.dataset.status = task.status;
  if (TERMINAL.has(task.status)) li.querySelector(".cancel")?.remove();
}

// --- start ---

async function useKey(event) {
  event?.preventDefault();
  state.key = $("api-key").value.trim();
  if (state.key) localStorage.setItem(KEY_STORAGE, state.key);
  else localStorage.removeItem(KEY_STORAGE);
  showError(null);
  await loadHistory();
}

function forgetKey() {
  localStorage.removeItem(KEY_STORAGE);
  localStorage.removeItem(SELECTED_STORAGE);
  state.key = "";
  $("api-key").value = "";
  $("history").replaceChildren();
  $("history-empty").hidden = false;
  $("history-empty").textContent = "Enter a key to see its jobs.";
  $("job").hidden = true;
}

async function loadModels() {
  const response = await fetch("/playground/models.json");
  const catalog = await response.json();
  state.models = catalog.models.filter((m) => dialectOf(m)); // the recommended one first
  state.recommended = catalog.recommended;
  $("model").replaceChildren(...state.models.map((m) => {
    const label = m.id === catalog.recommended ? `${m.id} (recommended)` : m.id;
    return new Option(label, m.id);
  }));
  restoreForm();
}

// --- the form, kept across reloads ---

const KEPT_FIELDS = ["prompt", "duration", "resolution", "aspect-ratio", "size", "seed",
  "negative-prompt", "image-url", "last-image-url"];

function saveForm() {
  const kept = { model: $("model").value, audio: $("audio").checked, images: {} };
  for (const id of KEPT_FIELDS) kept[id] = $(id).value;
  for (const field of ["image", "last_image"]) {
    const data = state.images[field];
    if (data && data.length <= KEPT_IMAGE_CHARS) kept.images[field] = data;
  }
  try {
    localStorage.setItem(FORM_STORAGE, JSON.stringify(kept));
  } catch (_) {
    kept.images = {}; // over the browser's quota: keep the rest
    localStorage.setItem(FORM_STORAGE, JSON.stringify(kept));
  }
}

function restoreForm() {
  let kept = null;
  try { kept = JSON.parse(localStorage.getItem(FORM_STORAGE) || "null"); } catch (_) { kept = null; }
  const known = kept && state.models.some((m) => m.id === kept.model);
  $("model").value = known ? kept.model : (state.recommended || state.models[0]?.id || "");
  renderForm();
  if (!known) return;
  for (const id of ["resolution", "prompt", "aspect-ratio", "size", "seed", "negative-prompt",
    "image-url", "last-image-url"]) {
    if (kept[id] !== undefined) $(id).value = kept[id];
  }
  fillDurations();
  if (kept.duration !== undefined) $("duration").value = kept.duration;
  $("audio").checked = Boolean(kept.audio);
  const previews = { image: ["image-drop", "image-url"], last_image: ["last-image-drop", "last-image-url"] };
  for (const [field, [dropId, urlId]] of Object.entries(previews)) {
    const preview = $(dropId).querySelector("img");
    const src = (kept.images || {})[field] || $(urlId).value;
    if (kept.images && kept.images[field]) state.images[field] = kept.images[field];
    preview.src = src || "";
    preview.hidden = !src;
  }
}

// --- the request it sent, as curl and as Python ---

function showSent(sent) {
  $("sent").hidden = !sent;
  $("sent-code").textContent = "";
  state.lastSent = sent;
}

function asCurl(sent) {
  const url = new URL(sent.path, location.href).href;
  return [
    `curl -s -X ${sent.method} '${url}' \\`,
    `  -H "Authorization: Bearer $KINEMA_API_KEY" -H "Content-Type: application/json" \\`,
    "  --data-binary @- <<'JSON'",
    JSON.stringify(sent.body, null, 2),
    "JSON",
  ].join("\n");
}

function pyLiteral(value, indent = "") {
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number" || typeof value === "string") return JSON.stringify(value);
  const inner = indent + "    ";
  if (Array.isArray(value)) {
    return `[${value.map((v) => pyLiteral(v, inner)).join(", ")}]`;
  }
  const items = Object.entries(value).map(([k, v]) => `${inner}${JSON.stringify(k)}: ${pyLiteral(v, inner)},`);
  return `{\n${items.join("\n")}\n${indent}}`;
}

function asPython(sent) {
  const url = new URL(sent.path, location.href).href;
  return [
    "import os",
    "",
    "import requests",
    "",
    `body = ${pyLiteral(sent.body)}`,
    `response = requests.request(${JSON.stringify(sent.method)}, ${JSON.stringify(url)},`,
    '                            headers={"Authorization": f"Bearer {os.environ[\'KINEMA_API_KEY\']}"},',
    "                            json=body)",
    "print(response.status_code, response.json())",
  ].join("\n");
}

async function copySent(format) {
  if (!state.lastSent) return;
  const text = format === "curl" ? asCurl(state.lastSent) : asPython(state.lastSent);
  $("sent-code").textContent = text;
  $("sent-code").dataset.format = format;
  try {
    await navigator.clipboard.writeText(text);
    $("sent-note").textContent = `Copied as ${format === "curl" ? "curl" : "Python"} (set KINEMA_API_KEY first).`;
  } catch (_) {
    $("sent-note").textContent = "Select the text below to copy it (set KINEMA_API_KEY first).";
  }
}

async function start() {
  $("api-key").value = state.key;
  $("key-form").addEventListener("submit", useKey);
  $("forget-key").addEventListener("click", forgetKey);
  $("model").addEventListener("change", renderForm);
  $("resolution").addEventListener("change", fillDurations);
  $("create-form").addEventListener("input", saveForm);
  $("create-form").addEventListener("change", saveForm);
  $("copy-curl").addEventListener("click", () => copySent("curl"));
  $("copy-python").addEventListener("click", () => copySent("python"));
  $("create-form").addEventListener("submit", submit);
  $("cancel").addEventListener("click", () => state.selected && cancel(state.selected));
  $("refresh").addEventListener("click", loadHistory);
  wireDrop("image-drop", "image-file", "image-url", "image");
  wireDrop("last-image-drop", "last-image-file", "last-image-url", "last_image");
  $("reference-files").addEventListener("change", async (e) => {
    const files = [...e.target.files].slice(0, 3);
    state.images.reference_images = await Promise.all(files.map(readFile));
    $("reference-previews").replaceChildren(...state.images.reference_images.map((src) => {
      const img = document.createElement("img");
      img.src = src;
      return img;
    }));
  });
  try {
    await loadModels();
  } catch (error) {
    showError(error);
  }
  if (state.key) {
    await loadHistory();
    const last = localStorage.getItem(SELECTED_STORAGE);
    if (last && $("history").querySelector(`li[data-id="${last}"]`)) select(last);
  }
}

start();
