// Clients of the gateway (same origin), the progress service and the chat service (URLs from
// /ui/config.json; those services allow this page's origin by CORS). In keys mode every call
// carries the session key; a 401 (the session expired or was revoked) ends the session.

import { authHeaders, currentSession, withToken } from "./session.js";

let config = null;

export async function loadConfig() {
  const response = await fetch("config.json");
  if (!response.ok) throw new Error(`config.json answered ${response.status}`);
  config = await response.json();
  return config;
}

export const urls = {
  gateway: (path) => new URL(path, window.location.origin).toString(),
  progress: (path) => `${config.progress_url}${path}`,
  chat: (path) => `${config.chat_url}${path}`,
};

/** An error an API answered: status, the server's detail and the whole body. */
export class ApiError extends Error {
  constructor(status, body) {
    const detail = (body && (body.detail || body.error)) || `HTTP ${status}`;
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
    this.body = body || {};
  }
}

/** Called with the server's reason when a session's key is refused (set by the page). */
let onSessionEnded = () => {};
export function whenSessionEnds(handler) {
  onSessionEnded = handler;
}

function refused(status, body) {
  if (status === 401 && currentSession()) onSessionEnded((body && body.detail) || "the session key was refused");
}

async function parse(response) {
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { detail: text };
  }
  if (!response.ok) {
    refused(response.status, body);
    throw new ApiError(response.status, body);
  }
  return body;
}

export async function call(url, { method = "GET", json, body, headers = {}, signal } = {}) {
  const init = { method, headers: { ...authHeaders(), ...headers }, signal };
  if (json !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(json);
  } else if (body !== undefined) {
    init.body = body;
  }
  return parse(await fetch(url, init));
}

export const gateway = {
  collections: () => call(urls.gateway("/v1/collections?limit=1000")),
  collection: (c) => call(urls.gateway(`/v1/collections/${encodeURIComponent(c)}`)),
  createCollection: (spec) => call(urls.gateway("/v1/collections"), { method: "POST", json: spec }),
  updateCollection: (c, patch) =>
    call(urls.gateway(`/v1/collections/${encodeURIComponent(c)}`), { method: "PATCH", json: patch }),
  documents: (c) => call(urls.gateway(`/v1/collections/${encodeURIComponent(c)}/documents?limit=1000`)),
  /** Upload one file; onProgress(fraction) reports the bytes sent (fetch cannot, so XHR). */
  upload: (c, file, params, onProgress = () => {}) =>
    new Promise((resolve, reject) => {
      const form = new FormData();
      form.append("file", file, file.name);
      const query = new URLSearchParams(params).toString();
      const request = new XMLHttpRequest();
      request.open("POST", urls.gateway(`/v1/collections/${encodeURIComponent(c)}/documents?${query}`));
      for (const [name, value] of Object.entries(authHeaders())) request.setRequestHeader(name, value);
      request.upload.onprogress = (event) => {
        if (event.lengthComputable) onProgress(event.loaded / event.total);
      };
      request.onerror = () => reject(new ApiError(0, { detail: "the gateway could not be reached" }));
      request.onload = () => {
        let body = null;
        try {
          body = request.responseText ? JSON.parse(request.responseText) : null;
        } catch {
          body = { detail: request.responseText };
        }
        if (request.status >= 200 && request.status < 300) resolve(body);
        else {
          refused(request.status, body);
          reject(new ApiError(request.status, body));
        }
      };
      request.send(form);
    }),
  deleteDocument: (d, { cancel = false } = {}) =>
    call(urls.gateway(`/v1/documents/${encodeURIComponent(d)}${cancel ? "?cancel=true" : ""}`), { method: "DELETE" }),
  reembed: (ids) => call(urls.gateway("/v1/documents/reembed"), { method: "POST", json: { document_ids: ids } }),
  versions: (d) => call(urls.gateway(`/v1/documents/${encodeURIComponent(d)}/versions`)),
  compare: (d, a, b) => call(urls.gateway(`/v1/documents/${encodeURIComponent(d)}/versions/${a}/compare/${b}`)),
  retryJob: (j) => call(urls.gateway(`/v1/jobs/${encodeURIComponent(j)}:retry`), { method: "POST" }),
  queue: () => call(urls.gateway("/v1/queue")),
  steerCollection: (c, action) =>
    call(urls.gateway(`/v1/collections/${encodeURIComponent(c)}/jobs:${action}`), { method: "POST" }),
  deadLetters: () => call(urls.gateway("/v1/dead-letters?limit=100")),
  replay: (seq) => call(urls.gateway(`/v1/dead-letters/${seq}:replay`), { method: "POST" }),
  tenantLimits: () => call(urls.gateway("/v1/tenant/limits")),
  tenantOrigins: () => call(urls.gateway("/v1/tenant/origins")),
  setTenantOrigins: (origins) => call(urls.gateway("/v1/tenant/origins"), { method: "PUT", json: { origins } }),
};

/** Sign-in and sign-out (keys mode): the API key is sent once, to be traded for a session key. */
export const sessions = {
  start: (apiKey) =>
    call(urls.gateway("/v1/sessions"), { method: "POST", headers: { authorization: `Bearer ${apiKey}` } }),
  whoAmI: (sessionKey) => call(urls.gateway("/v1/me"), { headers: { authorization: `Bearer ${sessionKey}` } }),
  end: (sessionKey) =>
    call(urls.gateway("/v1/sessions/current"), { method: "DELETE", headers: { authorization: `Bearer ${sessionKey}` } }),
};

export const progress = {
  jobs: (params) => call(urls.progress(`/v1/jobs?${new URLSearchParams(params)}`)),
};

export const chat = {
  conversations: (c) => call(urls.chat(`/v1/collections/${encodeURIComponent(c)}/conversations?limit=100`)),
  conversation: (id) => call(urls.chat(`/v1/conversations/${encodeURIComponent(id)}`)),
  deleteConversation: (id) => call(urls.chat(`/v1/conversations/${encodeURIComponent(id)}`), { method: "DELETE" }),
};

/**
 * Ask a question and stream the answer (Server-Sent Events over a POST): calls onEvent(name, data)
 * for started, citation, delta, sentence, done and error. Rejects with ApiError on a refusal.
 */
export async function askStreaming(url, body, onEvent, { headers = {}, signal } = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", accept: "text/event-stream", ...authHeaders(), ...headers },
    body: JSON.stringify({ ...body, stream: true }),
    signal,
  });
  if (!response.ok) await parse(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

/**
 * The progress feed of one collection over WebSocket: onJob(job) for every change, resuming after
 * the last position on reconnect. Returns a function that closes it.
 */
export function watchJobs(collectionId, onJob, onState = () => {}) {
  let position = 0;
  let socket = null;
  let closed = false;
  let delay = 500;
  const open = () => {
    const base = config.progress_url.replace(/^http/, "ws");
    const query = new URLSearchParams({ collection_id: collectionId, after: String(position) });
    socket = new WebSocket(withToken(`${base}/v1/jobs/stream?${query}`));
    socket.onopen = () => {
      delay = 500;
      onState("live");
    };
    socket.onmessage = (message) => {
      const item = JSON.parse(message.data);
      if (item.type !== "job") return;
      position = Math.max(position, item.position);
      onJob(item.job);
    };
    socket.onclose = () => {
      if (closed) return;
      onState("reconnecting");
      setTimeout(open, delay);
      delay = Math.min(delay * 2, 10000);
    };
  };
  open();
  return () => {
    closed = true;
    socket?.close();
  };
}
