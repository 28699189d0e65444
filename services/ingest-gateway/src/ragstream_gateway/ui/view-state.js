// Per-collection view state kept in localStorage: the last view, the source table's columns and
// sort, the open conversation, and a cache of the collection's settings and documents so that
// switching back to a collection renders at once, before the fresh copy arrives.

const PREFIX = "ragstream.";

export const SOURCE_COLUMNS = [
  { key: "status", label: "Status" },
  { key: "version", label: "Version" },
  { key: "size_bytes", label: "Size" },
  { key: "chunk_count", label: "Chunks" },
  { key: "uploaded_by", label: "Uploader" },
  { key: "created_at", label: "Uploaded" },
];

const DEFAULTS = {
  view: "ingest",
  columns: Object.fromEntries(SOURCE_COLUMNS.map((c) => [c.key, true])),
  sort: { key: "file_name", descending: false },
  conversationId: null,
};

function read(key, fallback) {
  try {
    const raw = window.localStorage.getItem(PREFIX + key);
    return raw ? JSON.parse(raw) : fallback;
  } catch {
    return fallback;
  }
}

function write(key, value) {
  try {
    window.localStorage.setItem(PREFIX + key, JSON.stringify(value));
  } catch {
    // storage full or disabled: the page works, it just forgets
  }
}

export function lastCollection() {
  return read("collection", null);
}

export function rememberCollection(collectionId) {
  write("collection", collectionId);
}

export function viewState(collectionId) {
  const stored = read(`view.${collectionId}`, {});
  return { ...DEFAULTS, ...stored, columns: { ...DEFAULTS.columns, ...(stored.columns || {}) } };
}

export function updateViewState(collectionId, changes) {
  const next = { ...viewState(collectionId), ...changes };
  write(`view.${collectionId}`, next);
  return next;
}

export function cached(collectionId, what) {
  return read(`cache.${collectionId}.${what}`, null);
}

export function cache(collectionId, what, value) {
  write(`cache.${collectionId}.${what}`, value);
}
