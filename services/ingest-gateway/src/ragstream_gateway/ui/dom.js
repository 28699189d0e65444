// Small DOM helpers: elements built from data (never innerHTML with user content) and formatters.

/** h("button", {class: "x", onclick: f}, "text", child) -> element */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key in el && typeof value !== "string") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function formatBytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatEta(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return "";
  if (seconds < 1) return "ETA < 1 s";
  if (seconds < 90) return `ETA ${Math.round(seconds)} s`;
  return `ETA ${Math.round(seconds / 60)} min`;
}

export function formatTime(iso) {
  if (!iso) return "–";
  const d = new Date(iso);
  return d.toLocaleString(undefined, { dateStyle: "short", timeStyle: "short" });
}

/** Announce a message to screen readers and show it briefly. */
export function toast(message, { error = false } = {}) {
  const box = document.getElementById("toast");
  if (!box) return;
  const item = h("p", { class: error ? "toast error" : "toast" }, message);
  box.append(item);
  setTimeout(() => item.remove(), error ? 9000 : 4000);
}

/** A modal dialog built from content; resolves with the value of the button pressed (or "cancel"). */
export function openDialog(title, body, buttons = [{ label: "Close", value: "cancel" }]) {
  const dialog = document.getElementById("dialog");
  return new Promise((resolve) => {
    const heading = h("h2", { id: "dialog-title" }, title);
    const actions = h(
      "div",
      { class: "dialog-actions" },
      buttons.map((b) =>
        h("button", { type: "button", class: b.class || "", onclick: () => dialog.close(b.value) }, b.label),
      ),
    );
    clear(dialog, heading, h("div", { class: "dialog-body" }, body), actions);
    dialog.setAttribute("aria-labelledby", "dialog-title");
    dialog.returnValue = "cancel";
    dialog.addEventListener("close", () => resolve(dialog.returnValue || "cancel"), { once: true });
    dialog.showModal();
    const primary = actions.querySelector(".primary, .danger") || actions.querySelector("button");
    primary?.focus();
  });
}
