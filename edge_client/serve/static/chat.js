// The chat page: streams answers from this server's /v1/chat/completions, marks who wrote
// each piece (delta.relay.source), and shows the session's offload ratio and the teacher's
// state from the usage chunk. Plain browser JavaScript: no build step, nothing fetched from
// elsewhere. One conversation is one ledger session (the x-relay-session header).
"use strict";

const $ = (id) => document.getElementById(id);
let model = null;
let messages = [];
let sessionId = newSessionId();
let running = null; // the AbortController of the answer being streamed

function newSessionId() {
  return "page-" + Date.now().toString(36) + "-" + Math.random().toString(36).slice(2, 10);
}

function headers() {
  const h = { "content-type": "application/json", "x-relay-session": sessionId };
  const key = $("api-key").value.trim() || localStorage.getItem("relay-api-key") || "";
  if (key) h.authorization = "Bearer " + key;
  return h;
}

function showState(state) {
  const el = $("teacher-state");
  el.textContent = state || "none (teacher-free)";
  el.className = "state " + (state || "");
}

async function loadHealth() {
  const response = await fetch("/health");
  const health = await response.json();
  model = health.model;
  $("model").textContent = health.model + " · " + (health.mode || "teacher not reached") + " mode";
  showState(health.teacher_state);
}

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

function addTurn(role, text) {
  const div = document.createElement("div");
  div.className = "turn " + role;
  if (text) div.textContent = text;
  $("log").appendChild(div);
  return div;
}

function appendPiece(turn, text, source) {
  const last = turn.lastElementChild;
  if (last && last.dataset.source === source && !last.classList.contains("meta")) {
    last.textContent += text;
    return;
  }
  const span = document.createElement("span");
  span.dataset.source = source;
  if (source !== "student") span.className = source;
  span.textContent = text;
  turn.appendChild(span);
}

// Server-sent events from a fetch body: "data: ..." lines, events split by blank lines.
async function* sseData(response) {
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let end;
    while ((end = buffer.search(/\r?\n\r?\n/)) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end).replace(/^\r?\n\r?\n/, "");
      const data = block.split(/\r?\n/).filter((l) => l.startsWith("data:"))
        .map((l) => l.slice(5).trimStart()).join("\n");
      if (data) yield data;
    }
  }
}

async function ask(question) {
  showError("");
  messages.push({ role: "user", content: question });
  addTurn("user", question);
  const turn = addTurn("assistant", "");
  let written = "";
  running = new AbortController();
  $("send").hidden = true;
  $("stop").hidden = false;
  try {
    const response = await fetch("/v1/chat/completions", {
      method: "POST",
      headers: headers(),
      signal: running.signal,
      body: JSON.stringify({
        model, messages, stream: true, stream_options: { include_usage: true },
      }),
    });
    if (!response.ok) {
      const body = await response.json().catch(() => ({}));
      if (response.status === 401) $("key-box").open = true;
      throw new Error((body.error && body.error.message) || response.statusText);
    }
    for await (const data of sseData(response)) {
      if (data === "[DONE]") continue; // the server ends the stream right after
      const chunk = JSON.parse(data);
      if (chunk.error) throw new Error(chunk.error.message);
      for (const choice of chunk.choices) {
        const delta = choice.delta || {};
        if (delta.content) {
          written += delta.content;
          appendPiece(turn, delta.content, (delta.relay && delta.relay.source) || "student");
        }
      }
      if (chunk.usage && chunk.usage.relay) showUsage(turn, chunk.usage);
    }
  } catch (error) {
    if (error.name !== "AbortError") showError(error.message);
  } finally {
    messages.push({ role: "assistant", content: written });
    running = null;
    $("send").hidden = false;
    $("stop").hidden = true;
  }
}

function showUsage(turn, usage) {
  const relay = usage.relay;
  $("offload").textContent = (100 * relay.session.offload_ratio).toFixed(1) + " %";
  showState(relay.teacher_state);
  const meta = document.createElement("span");
  meta.className = "meta";
  meta.textContent = `student ${relay.student_tokens} · teacher ${relay.teacher_tokens} tokens · `
    + `calls ${relay.teacher_calls} (${relay.fallback_spans} fallback) · `
    + `offload ${(100 * relay.offload_ratio).toFixed(1)} % · `
    + `${usage.prompt_tokens_details.cached_tokens} of ${usage.prompt_tokens} prompt tokens cached`;
  turn.appendChild(meta);
}

$("ask").addEventListener("submit", (event) => {
  event.preventDefault();
  const question = $("question").value.trim();
  if (!question || running) return;
  $("question").value = "";
  ask(question);
});
$("question").addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey) {
    event.preventDefault();
    $("ask").requestSubmit();
  }
});
$("stop").addEventListener("click", () => running && running.abort());
$("new-chat").addEventListener("click", () => {
  if (running) running.abort();
  messages = [];
  sessionId = newSessionId();
  $("log").textContent = "";
  $("offload").textContent = "0.0 %";
});
$("key-form").addEventListener("submit", (event) => event.preventDefault());
$("api-key").addEventListener("change", () => localStorage.setItem("relay-api-key", $("api-key").value.trim()));
$("api-key").value = localStorage.getItem("relay-api-key") || "";
loadHealth().catch((error) => showError("cannot reach the server: " + error.message));
