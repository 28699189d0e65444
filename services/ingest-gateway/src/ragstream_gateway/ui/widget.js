// The embeddable chat widget: one script tag, rendered in a Shadow DOM so the host page's CSS
// cannot reach it.
//
//   <script src="https://ragstream.example.com/ui/widget.js" data-collection="handbook"
//           data-key="PUBLIC-KEY" data-title="Ask the handbook" async></script>
//
// The chat service URL comes from the gateway's /ui/config.json (next to this script), or from
// data-chat-url. data-key is sent as "Authorization: Bearer <key>": a public chat key, limited to
// its collections and to pages of its origins (README: Security).
// The host page's origin must be in RAGSTREAM_CORS_ORIGINS of the chat service and the gateway.
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var data = script.dataset;
  var collection = data.collection || "default";
  var base = new URL(".", script.src);

  var STYLE = [
    // !important here wins over the host page's !important rules on the host element (CSS cascade:
    // the shadow context's important declarations beat the outer context's)
    ":host { all: initial !important; display: block !important; position: fixed !important; right: 20px !important;",
    "  bottom: 20px !important; z-index: 2147483000 !important; }",
    ".panel, .launcher { font: 15px/1.45 system-ui, -apple-system, 'Segoe UI', sans-serif; color: #1b1f24; }",
    "* { box-sizing: border-box; }",
    "button, textarea { font: inherit; }",
    ".launcher { background: #1d4ed8; color: #fff; border: 0; border-radius: 999px; padding: 12px 18px;",
    "  cursor: pointer; box-shadow: 0 4px 14px rgba(0,0,0,.25); font-weight: 600; }",
    ".launcher:focus-visible, button:focus-visible, textarea:focus-visible { outline: 3px solid #f59e0b; outline-offset: 2px; }",
    ".panel { width: min(380px, calc(100vw - 40px)); max-height: min(560px, calc(100vh - 100px)); display: flex;",
    "  flex-direction: column; background: #fff; border: 1px solid #c9d1da; border-radius: 12px;",
    "  box-shadow: 0 8px 30px rgba(0,0,0,.25); margin-bottom: 10px; overflow: hidden; }",
    ".panel[hidden] { display: none; }",
    "header { display: flex; justify-content: space-between; align-items: center; background: #1d4ed8; color: #fff;",
    "  padding: 10px 14px; font-weight: 600; }",
    "header button { background: transparent; color: #fff; border: 0; font-size: 20px; cursor: pointer; line-height: 1; }",
    ".log { padding: 12px 14px; overflow-y: auto; flex: 1; min-height: 120px; }",
    ".log p { margin: 0 0 8px; }",
    ".q { font-weight: 600; }",
    ".hint { color: #4b5563; font-size: 13px; }",
    ".error { color: #b91c1c; }",
    ".cite { background: #e0e7ff; color: #1e3a8a; border: 0; border-radius: 4px; padding: 0 4px; margin: 0 1px;",
    "  cursor: pointer; font-size: 12px; font-weight: 600; }",
    "blockquote { margin: 6px 0 10px; padding: 8px 10px; background: #f3f4f6; border-left: 3px solid #1d4ed8;",
    "  font-size: 13px; white-space: pre-wrap; }",
    "form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid #e5e7eb; }",
    "label { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }",
    "textarea { flex: 1; resize: none; border: 1px solid #9ca3af; border-radius: 8px; padding: 8px; color: #1b1f24; background: #fff; }",
    "form button { background: #1d4ed8; color: #fff; border: 0; border-radius: 8px; padding: 0 14px; cursor: pointer; font-weight: 600; }",
    "form button:disabled { background: #6b7280; }",
  ].join("\n");

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    if (text) node.textContent = text;
    return node;
  }

  function chatUrl() {
    if (data.chatUrl) return Promise.resolve(data.chatUrl.replace(/\/$/, ""));
    return fetch(new URL("config.json", base)).then(function (r) {
      if (!r.ok) throw new Error("config.json answered " + r.status);
      return r.json();
    }).then(function (config) { return config.chat_url; });
  }

  var host = el("ragstream-chat", { "data-ragstream-widget": collection });
  var root = host.attachShadow({ mode: "open" });
  var style = el("style");
  style.textContent = STYLE;
  var panel = el("section", { class: "panel", role: "dialog", "aria-label": data.title || "Ask " + collection, hidden: "" });
  var header = el("header");
  header.append(el("span", {}, data.title || "Ask " + collection));
  var close = el("button", { type: "button", "aria-label": "Close chat" }, "×");
  header.append(close);
  var log = el("div", { class: "log", "aria-live": "polite" });
  log.append(el("p", { class: "hint" }, "Ask a question; answers cite their sources."));
  var form = el("form");
  var input = el("textarea", { id: "rs-question", rows: "2", required: "", maxlength: "4000" });
  form.append(el("label", { for: "rs-question" }, "Your question"), input, el("button", { type: "submit" }, "Ask"));
  panel.append(header, log, form);
  var launcher = el("button", { type: "button", class: "launcher", "aria-expanded": "false" }, data.label || "Ask a question");
  root.append(style, panel, launcher);

  function toggle(open) {
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    if (open) input.focus();
    else launcher.focus();
  }
  launcher.addEventListener("click", function () { toggle(panel.hidden); });
  close.addEventListener("click", function () { toggle(false); });
  panel.addEventListener("keydown", function (e) { if (e.key === "Escape") toggle(false); });
  input.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); form.requestSubmit(); }
  });

  var conversationId = null;

  function render(target, answer) {
    target.textContent = "";
    var byNumber = {};
    (answer.citations || []).forEach(function (c) { byNumber[c.number] = c; });
    var passages = el("div");
    var sentences = answer.sentences && answer.sentences.length ? answer.sentences : [{ text: answer.answer, citations: [] }];
    function button(c) {
      var b = el("button", { type: "button", class: "cite", "aria-label": "Source " + c.number + ": " + c.file_name }, "[" + c.number + "]");
      b.addEventListener("click", function () {
        var where = [c.file_name].concat(c.heading_path || []).join(" › ") + (c.page ? ", page " + c.page : "");
        passages.textContent = "";
        passages.append(el("p", { class: "hint" }, where), el("blockquote", {}, c.text));
      });
      return b;
    }
    // each [n] in a sentence becomes a button; a citation without a marker gets one at the end
    sentences.forEach(function (s) {
      var shown = {};
      s.text.split(/(\[\d+\])/).forEach(function (piece) {
        var marker = /^\[(\d+)\]$/.exec(piece);
        var c = marker && byNumber[Number(marker[1])];
        if (c) {
          shown[c.number] = true;
          target.append(button(c));
        } else if (piece) target.append(document.createTextNode(piece));
      });
      (s.citations || []).forEach(function (n) {
        if (!shown[n] && byNumber[n]) target.append(document.createTextNode(" "), button(byNumber[n]));
      });
      target.append(document.createTextNode(" "));
    });
    target.after(passages);
  }

  form.addEventListener("submit", function (e) {
    e.preventDefault();
    var question = input.value.trim();
    if (!question) return;
    input.value = "";
    var button = form.querySelector("button");
    button.disabled = true;
    log.append(el("p", { class: "q" }, question));
    var answer = el("p", { class: "a", "aria-busy": "true" });
    log.append(answer);
    var headers = { "content-type": "application/json", accept: "text/event-stream" };
    if (data.key) headers.authorization = "Bearer " + data.key;
    chatUrl().then(function (url) {
      return fetch(url + "/v1/collections/" + encodeURIComponent(collection) + "/chat", {
        method: "POST",
        headers: headers,
        body: JSON.stringify({ question: question, conversation_id: conversationId || undefined, stream: true }),
      });
    }).then(function (response) {
      if (!response.ok) {
        return response.json().catch(function () { return {}; }).then(function (body) {
          throw new Error(body.detail || "the chat service answered " + response.status);
        });
      }
      var reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      var buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) return;
          buffer += chunk.value;
          var cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            var block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            var name = "message";
            var payload = "";
            block.split("\n").forEach(function (line) {
              if (line.indexOf("event:") === 0) name = line.slice(6).trim();
              else if (line.indexOf("data:") === 0) payload += line.slice(5).trim();
            });
            if (!payload) continue;
            var event = JSON.parse(payload);
            if (name === "started") conversationId = event.conversation_id;
            else if (name === "delta") answer.textContent += event.text;
            else if (name === "done") render(answer, event);
            else if (name === "error") throw new Error(event.detail);
          }
          return pump();
        });
      }
      return pump();
    }).catch(function (error) {
      answer.textContent = "Sorry, no answer: " + error.message;
      answer.className = "a error";
    }).then(function () {
      answer.removeAttribute("aria-busy");
      button.disabled = false;
      log.scrollTop = log.scrollHeight;
    });
  });

  function mount() { document.body.append(host); }
  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount);
})();
