// Chat playground: streamed answers whose citations open the cited passage, and the collection's
// conversations (continue one, start another, delete).

import { chat, askStreaming, urls } from "./api.js";
import { clear, formatTime, h, openDialog, toast } from "./dom.js";
import { updateViewState, viewState } from "./view-state.js";

/** Show a cited passage: file, heading path, page, the text and its score. */
export function openCitation(citation) {
  const where = [citation.file_name, (citation.heading_path || []).join(" › "), citation.page ? `page ${citation.page}` : ""]
    .filter(Boolean)
    .join(" · ");
  return openDialog(`[${citation.number}] ${citation.file_name}`, [
    h("p", { class: "hint" }, where, ` · version ${citation.version} · score ${Number(citation.score).toFixed(2)}`),
    h("blockquote", { class: "passage" }, citation.text),
  ]);
}

function citationButton(citation) {
  return h(
    "button",
    { type: "button", class: "citation", onclick: () => openCitation(citation), "aria-label": `Citation ${citation.number}: ${citation.file_name}` },
    `[${citation.number}]`,
  );
}

/**
 * The answer's sentences with each [n] marker turned into a button that opens passage n; a
 * citation the sentence rests on without a marker in its text gets its button at the end.
 */
function answerBody(answer, citations) {
  const byNumber = new Map(citations.map((c) => [c.number, c]));
  if (!answer.sentences?.length) return [h("p", {}, answer.answer)];
  const parts = [];
  for (const sentence of answer.sentences) {
    const shown = new Set();
    sentence.text.split(/(\[\d+\])/).forEach((piece) => {
      const marker = /^\[(\d+)\]$/.exec(piece);
      const citation = marker && byNumber.get(Number(marker[1]));
      if (citation) {
        shown.add(citation.number);
        parts.push(citationButton(citation));
      } else if (piece) parts.push(piece);
    });
    for (const n of sentence.citations || []) if (!shown.has(n) && byNumber.has(n)) parts.push(" ", citationButton(byNumber.get(n)));
    parts.push(" ");
  }
  return [h("p", {}, parts)];
}

function sourcesList(citations) {
  if (!citations.length) return null;
  return h(
    "ol",
    { class: "citations", "aria-label": "Sources" },
    citations.map((c) =>
      h("li", { value: c.number }, h("button", { type: "button", class: "link", onclick: () => openCitation(c) },
        `${c.file_name}${c.heading_path?.length ? ` › ${c.heading_path.join(" › ")}` : ""}${c.page ? `, page ${c.page}` : ""}`)),
    ),
  );
}

export function mountChat(section, context) {
  let conversationId = null;
  let busy = false;
  const list = h("ul", { class: "conversations", id: "conversations" });
  const log = h("div", { class: "chat-log", id: "chat-log", "aria-live": "polite" });
  const question = h("textarea", { id: "question", name: "question", rows: 2, required: true, maxlength: 4000 });
  const send = h("button", { type: "submit", class: "primary" }, "Ask");
  const form = h(
    "form",
    { class: "ask", onsubmit: (event) => { event.preventDefault(); ask(); } },
    h("label", { for: "question" }, "Your question"),
    question,
    send,
  );
  question.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  clear(
    section,
    h("h2", { id: "chat-title" }, "Chat"),
    h(
      "div",
      { class: "chat-layout" },
      h("aside", { class: "card", "aria-labelledby": "conversations-title" },
        h("div", { class: "toolbar" }, h("h3", { id: "conversations-title" }, "Conversations"),
          h("button", { type: "button", id: "new-conversation", onclick: () => openConversation(null) }, "New")),
        list),
      h("div", { class: "card chat-main" }, log, form),
    ),
  );

  function emptyLog() {
    clear(log, h("p", { class: "empty" }, `Ask anything about the documents of ${context.collection()}. Answers cite their sources: click a number to read the passage.`));
  }

  function turn(role, ...content) {
    const item = h("div", { class: `turn ${role}` }, h("span", { class: "visually-hidden" }, role === "user" ? "You asked:" : "Answer:"), ...content);
    log.append(item);
    item.scrollIntoView({ block: "end" });
    return item;
  }

  async function loadConversations() {
    const id = context.collection();
    try {
      const items = (await chat.conversations(id)).conversations;
      if (id !== context.collection()) return;
      clear(
        list,
        items.length
          ? items.map((c) =>
              h("li", {}, h("button", {
                type: "button",
                class: c.conversation_id === conversationId ? "link current" : "link",
                "aria-current": c.conversation_id === conversationId ? "true" : null,
                onclick: () => openConversation(c.conversation_id),
              }, c.title || "(untitled)"), h("span", { class: "hint" }, ` ${formatTime(c.updated_at)}`)))
          : h("li", { class: "empty" }, "No conversations yet: your first question starts one."),
      );
    } catch (error) {
      clear(list, h("li", { class: "warning" }, `Chat is not reachable at ${urls.chat("")}: ${error.message}`));
    }
  }

  async function openConversation(id) {
    conversationId = id;
    updateViewState(context.collection(), { conversationId: id });
    emptyLog();
    loadConversations();
    if (!id) {
      question.focus();
      return;
    }
    try {
      const conversation = await chat.conversation(id);
      log.replaceChildren();
      for (const m of conversation.messages) {
        if (m.role === "user") turn("user", h("p", {}, m.content));
        else {
          const citations = m.citations || [];
          turn("assistant", ...answerBody({ answer: m.content, sentences: m.sentences }, citations), sourcesList(citations));
        }
      }
      if (!conversation.messages.length) emptyLog();
    } catch (error) {
      toast(`Could not open the conversation: ${error.message}`, { error: true });
      conversationId = null;
    }
  }

  async function ask() {
    const text = question.value.trim();
    if (!text || busy) return;
    busy = true;
    send.disabled = true;
    if (log.querySelector(".empty")) log.replaceChildren();
    turn("user", h("p", {}, text));
    question.value = "";
    const streaming = h("p", { class: "streaming" });
    const answerTurn = turn("assistant", streaming);
    answerTurn.setAttribute("aria-busy", "true");
    const citations = [];
    const collectionId = context.collection();
    try {
      await askStreaming(urls.chat(`/v1/collections/${encodeURIComponent(collectionId)}/chat`),
        { question: text, conversation_id: conversationId || undefined },
        (name, data) => {
          if (name === "started") {
            conversationId = data.conversation_id;
            updateViewState(collectionId, { conversationId });
          } else if (name === "citation") citations.push(data);
          else if (name === "delta") streaming.textContent += data.text;
          else if (name === "done") clear(answerTurn, ...answerBody(data, data.citations || citations), sourcesList(data.citations || citations));
          else if (name === "error") clear(answerTurn, h("p", { role: "alert", class: "warning" }, `The answer failed: ${data.detail}`));
        });
    } catch (error) {
      clear(answerTurn, h("p", { role: "alert", class: "warning" }, `Refused (${error.status || "network"}): ${error.message}`));
    } finally {
      answerTurn.removeAttribute("aria-busy");
      busy = false;
      send.disabled = false;
      loadConversations();
    }
  }

  return {
    collectionChanged(collectionId) {
      conversationId = viewState(collectionId).conversationId;
    },
    show() {
      openConversation(conversationId);
    },
    hide() {},
  };
}
