// Sign-in (keys mode): the user pastes an API key, the page trades it for a short-lived session
// key (POST /v1/sessions) and learns who it names (GET /v1/me). Only the session key is kept
// (sessionStorage, this tab); the API key leaves the form as soon as it is sent.

import { ApiError, sessions } from "./api.js";
import { clear, h } from "./dom.js";
import { keepSession } from "./session.js";

/** Show the sign-in form in ``section`` with ``notice`` (why it is shown); resolves once signed in. */
export function signIn(section, notice = "") {
  return new Promise((resolve) => {
    const input = h("input", {
      id: "api-key",
      name: "api_key",
      type: "password",
      required: true,
      autocomplete: "off",
      spellcheck: "false",
      "aria-describedby": "api-key-hint",
    });
    const submit = h("button", { type: "submit", class: "primary" }, "Sign in");
    const message = h("p", { id: "signin-message", role: "alert", class: notice ? "notice" : "" }, notice);
    const form = h(
      "form",
      { class: "card signin", id: "signin-form", onsubmit: (event) => { event.preventDefault(); send(); } },
      h("h2", { id: "signin-title" }, "Sign in"),
      message,
      h("div", { class: "field" }, h("label", { for: "api-key" }, "API key"), input),
      h(
        "p",
        { class: "hint", id: "api-key-hint" },
        "Paste an API key of your tenant (rs_live_…). The page trades it for a session key that expires after a" +
          " few minutes and keeps only that, in this tab; the API key itself is not stored.",
      ),
      submit,
    );
    clear(section, form);
    section.hidden = false;
    input.focus();

    async function send() {
      const apiKey = input.value.trim();
      if (!apiKey) return;
      submit.disabled = true;
      message.className = "";
      message.textContent = "Signing in…";
      try {
        const session = await sessions.start(apiKey);
        input.value = ""; // the API key is done with
        const who = await sessions.whoAmI(session.key);
        keepSession({
          key: session.key,
          key_id: session.key_id,
          expires_at: session.expires_at,
          tenant_id: who.tenant_id,
          account_id: who.account_id,
          role: who.role,
        });
        section.hidden = true;
        resolve();
      } catch (error) {
        const status = error instanceof ApiError ? error.status : 0;
        message.className = "warning";
        message.textContent =
          status === 401
            ? `Sign-in failed: ${error.message}`
            : `Sign-in failed (${status || "network"}): ${error.message}`;
        submit.disabled = false;
        input.select();
        input.focus();
      }
    }
  });
}
