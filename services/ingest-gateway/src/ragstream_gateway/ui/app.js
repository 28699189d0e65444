// The page: loads the configuration, signs in (keys mode), keeps the chosen collection, and
// switches between the Ingest, Chat and Admin views (#ingest, #chat, #admin), restoring each
// collection's last view. Controls the signed-in role cannot use are hidden (body[data-role]).

import { ApiError, gateway, loadConfig, sessions, whenSessionEnds } from "./api.js";
import { clear, formatTime, h, openDialog, toast } from "./dom.js";
import { mountAdmin } from "./admin.js";
import { mountChat } from "./chat.js";
import { mountIngest } from "./ingest.js";
import { currentSession, dropSession, takeNotice } from "./session.js";
import { signIn } from "./signin.js";
import { lastCollection, rememberCollection, updateViewState, viewState } from "./view-state.js";

const VIEWS = ["ingest", "chat", "admin"];
const IDENTIFIER = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;

const state = { collection: null, collections: [], view: null, views: {} };

function currentView() {
  const name = window.location.hash.replace("#", "");
  return VIEWS.includes(name) ? name : null;
}

async function fetchCollections() {
  try {
    state.collections = (await gateway.collections()).collections.map((c) => c.collection_id);
  } catch (error) {
    toast(`Could not list collections: ${error.message}`, { error: true });
  }
}

function renderCollections() {
  const ids = new Set(state.collections);
  if (state.collection) ids.add(state.collection);
  if (ids.size === 0) ids.add("default"); // an upload creates it
  clear(
    document.getElementById("collection"),
    [...ids].sort().map((id) => h("option", { value: id, selected: id === state.collection }, id)),
  );
}

async function refreshCollections() {
  await fetchCollections();
  renderCollections();
}

function show(view) {
  state.view = view;
  for (const name of VIEWS) {
    document.getElementById(`view-${name}`).hidden = name !== view;
    const link = document.querySelector(`nav a[data-view="${name}"]`);
    if (name === view) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  updateViewState(state.collection, { view });
  for (const [name, mounted] of Object.entries(state.views)) {
    if (name === view) mounted.show(state.collection);
    else mounted.hide();
  }
}

function selectCollection(collectionId) {
  state.collection = collectionId;
  rememberCollection(collectionId);
  document.getElementById("collection").value = collectionId;
  for (const mounted of Object.values(state.views)) mounted.collectionChanged?.(collectionId);
  goTo(viewState(collectionId).view);
}

/** Show a view and put it in the address (without a second render from hashchange). */
function goTo(view) {
  if (currentView() !== view) window.history.replaceState(null, "", `#${view}`);
  show(view);
}

async function newCollection() {
  const input = h("input", { id: "new-collection-id", name: "collection_id", required: true, autocomplete: "off" });
  const body = [
    h("label", { for: "new-collection-id" }, "Name"),
    input,
    h("p", { class: "hint" }, "Letters, digits, dot, dash and underscore; up to 128 characters."),
  ];
  const opened = openDialog("New collection", body, [
    { label: "Create", value: "create", class: "primary" },
    { label: "Cancel", value: "cancel" },
  ]);
  input.focus();
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter") document.getElementById("dialog").close("create");
  });
  if ((await opened) !== "create") return;
  const id = input.value.trim();
  if (!IDENTIFIER.test(id)) {
    toast(`"${id}" is not a valid collection name: use letters, digits, dot, dash and underscore.`, { error: true });
    return;
  }
  try {
    await gateway.createCollection({ collection_id: id });
    toast(`Collection ${id} created.`);
  } catch (error) {
    if (!(error instanceof ApiError && error.status === 409)) {
      toast(`Could not create ${id}: ${error.message}`, { error: true });
      return;
    }
  }
  state.collection = id;
  await refreshCollections();
  selectCollection(id);
}

let ending = false;

/** Leave the session (sign-out, expiry, a refused key) and show the sign-in view with ``notice``. */
function endSession(notice) {
  if (ending) return;
  ending = true;
  dropSession(notice);
  window.location.reload(); // a clean page: no feed, timer or view of the old session survives
}

async function signOut() {
  const session = currentSession();
  dropSession("You signed out."); // forgotten first: leaving the page before the server answers cannot keep it
  try {
    if (session) await sessions.end(session.key); // revoked at once: the key is useless even if it was copied
  } catch {
    // expired or revoked already: signing out still forgets it
  }
  endSession("You signed out.");
}

function showWho(session) {
  const who = document.getElementById("who");
  clear(
    who,
    h("span", { id: "who-text" }, "Signed in as ", h("strong", {}, session.account_id), ` (${session.role}) · tenant `,
      h("strong", {}, session.tenant_id)),
    h("button", { type: "button", id: "sign-out", onclick: signOut }, "Sign out"),
  );
  who.hidden = false;
}

/** Keys mode: a live session of this tab, signing in first if there is none. */
async function ensureSession() {
  let session = currentSession();
  const expired = session && Date.parse(session.expires_at) <= Date.now();
  if (expired) dropSession();
  if (!session || expired) {
    document.body.classList.add("signing-in");
    document.getElementById("loading").hidden = true;
    const notice = takeNotice() || (expired ? `Your session expired at ${formatTime(session.expires_at)}. Sign in again.` : "");
    await signIn(document.getElementById("view-signin"), notice);
    document.body.classList.remove("signing-in");
    document.getElementById("loading").hidden = false;
    session = currentSession();
  }
  whenSessionEnds((reason) => endSession(`Your session ended: ${reason}. Sign in again.`));
  const left = Date.parse(session.expires_at) - Date.now();
  setTimeout(() => endSession(`Your session expired at ${formatTime(session.expires_at)}. Sign in again.`), Math.max(0, left));
  showWho(session);
  return session;
}

async function start() {
  const config = await loadConfig();
  const session = config.auth_mode === "keys" ? await ensureSession() : null;
  document.body.dataset.role = session ? session.role : "admin"; // open mode: everyone is an admin
  const context = { collection: () => state.collection, refreshCollections };
  state.views = {
    ingest: mountIngest(document.getElementById("view-ingest"), context),
    chat: mountChat(document.getElementById("view-chat"), context),
    admin: mountAdmin(document.getElementById("view-admin"), context),
  };
  await fetchCollections();
  const remembered = lastCollection();
  state.collection =
    remembered && (state.collections.includes(remembered) || state.collections.length === 0)
      ? remembered
      : state.collections[0] || "default";
  renderCollections();
  document.getElementById("loading").remove();
  const select = document.getElementById("collection");
  const create = document.getElementById("new-collection");
  select.addEventListener("change", (event) => selectCollection(event.target.value));
  create.addEventListener("click", newCollection);
  select.disabled = false; // usable once their handlers are in place
  create.disabled = false;
  window.addEventListener("hashchange", () => show(currentView() || "ingest"));
  for (const mounted of Object.values(state.views)) mounted.collectionChanged?.(state.collection);
  goTo(currentView() || viewState(state.collection).view);
}

start().catch((error) => {
  const loading = document.getElementById("loading");
  if (loading) loading.textContent = `The page could not start: ${error.message}. Is the gateway running?`;
});
