// The source list of a collection: status, version, size, chunks and uploader, with re-embed (one
// or many), delete with confirmation, and version history with compare.

import { ApiError, gateway } from "./api.js";
import { clear, formatBytes, formatTime, h, openDialog, toast } from "./dom.js";
import { SOURCE_COLUMNS, cache, cached, updateViewState, viewState } from "./view-state.js";

const RUNNING = new Set(["uploaded", "released", "parsing", "parsed", "embedding", "deleting"]);

function cell(doc, key, live) {
  switch (key) {
    case "status": {
      if (live && RUNNING.has(live.status)) return `${live.stage} ${Math.round(live.percent)}%`;
      if (!doc.error) return doc.status;
      const reason = doc.error.length > 160 ? `${doc.error.slice(0, 160)}…` : doc.error;
      return [doc.status, h("span", { class: "hint reason", title: doc.error }, reason)];
    }
    case "version":
      return doc.label && doc.label !== `v${doc.version}` ? `${doc.version} (${doc.label})` : String(doc.version);
    case "size_bytes":
      return formatBytes(doc.size_bytes);
    case "chunk_count":
      return doc.chunk_count ?? "–";
    case "created_at":
      return formatTime(doc.created_at);
    default:
      return doc[key] ?? "–";
  }
}

export function mountSources(context, { liveJob }) {
  let documents = [];
  let collectionId = null;
  const selected = new Set();
  let refreshTimer = null;

  const table = h("table", { class: "sources", id: "sources" });
  const empty = h("p", { class: "empty", id: "sources-empty", hidden: true });
  const count = h("span", { class: "hint", "aria-live": "polite" });
  const reembedButton = h("button", { type: "button", id: "reembed-selected", class: "needs-editor", disabled: true, onclick: () => reembed([...selected]) }, "Re-embed selected");
  const columnsMenu = h("details", { class: "columns-menu" }, h("summary", {}, "Columns"));
  const element = h(
    "section",
    { class: "card", "aria-labelledby": "sources-title" },
    h("div", { class: "toolbar" }, h("h3", { id: "sources-title" }, "Sources"), count, reembedButton, columnsMenu,
      h("button", { type: "button", onclick: () => refresh() }, "Refresh")),
    empty,
    table,
  );

  function renderColumnsMenu() {
    const state = viewState(collectionId);
    clear(
      columnsMenu,
      h("summary", {}, "Columns"),
      h(
        "fieldset",
        {},
        h("legend", { class: "visually-hidden" }, "Columns shown"),
        SOURCE_COLUMNS.map((c) =>
          h(
            "label",
            {},
            h("input", {
              type: "checkbox",
              name: `column-${c.key}`,
              checked: state.columns[c.key] !== false,
              onchange: (event) => {
                updateViewState(collectionId, { columns: { ...viewState(collectionId).columns, [c.key]: event.target.checked } });
                render();
              },
            }),
            ` ${c.label}`,
          ),
        ),
      ),
    );
  }

  function sorted() {
    const { key, descending } = viewState(collectionId).sort;
    const value = (d) => d[key] ?? "";
    const out = [...documents].sort((a, b) => (value(a) < value(b) ? -1 : value(a) > value(b) ? 1 : 0));
    return descending ? out.reverse() : out;
  }

  function sortButton(key, label) {
    const { sort } = viewState(collectionId);
    const active = sort.key === key;
    return h(
      "th",
      { scope: "col", "aria-sort": active ? (sort.descending ? "descending" : "ascending") : "none" },
      h(
        "button",
        {
          type: "button",
          class: "link",
          onclick: () => {
            updateViewState(collectionId, { sort: { key, descending: active ? !sort.descending : false } });
            render();
          },
        },
        label,
        active ? (sort.descending ? " ▼" : " ▲") : "",
      ),
    );
  }

  function render() {
    const columns = SOURCE_COLUMNS.filter((c) => viewState(collectionId).columns[c.key] !== false);
    count.textContent = documents.length === 1 ? "1 document" : documents.length ? `${documents.length} documents` : "";
    empty.hidden = documents.length > 0;
    table.hidden = documents.length === 0;
    empty.textContent = `No documents in ${collectionId} yet. Drop files above, or choose files, to add the first ones.`;
    for (const id of [...selected]) if (!documents.some((d) => d.document_id === id)) selected.delete(id);
    reembedButton.disabled = selected.size === 0;
    const all = h("input", {
      type: "checkbox",
      "aria-label": "Select all documents",
      checked: documents.length > 0 && selected.size === documents.length,
      onchange: (event) => {
        selected.clear();
        if (event.target.checked) for (const d of documents) selected.add(d.document_id);
        render();
      },
    });
    clear(
      table,
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, all), sortButton("file_name", "Name"),
        columns.map((c) => sortButton(c.key, c.label)), h("th", { scope: "col" }, "Actions"))),
      h(
        "tbody",
        {},
        sorted().map((doc) =>
          h(
            "tr",
            { dataset: { documentId: doc.document_id, fileName: doc.file_name } },
            h("td", {}, h("input", {
              type: "checkbox",
              "aria-label": `Select ${doc.file_name}`,
              checked: selected.has(doc.document_id),
              onchange: (event) => {
                if (event.target.checked) selected.add(doc.document_id);
                else selected.delete(doc.document_id);
                reembedButton.disabled = selected.size === 0;
              },
            })),
            h("th", { scope: "row" }, doc.file_name),
            columns.map((c) => h("td", { class: `col-${c.key}` }, cell(doc, c.key, liveJob(doc.job_id)))),
            h(
              "td",
              { class: "actions" },
              h("button", { type: "button", onclick: () => history(doc) }, "History", h("span", { class: "visually-hidden" }, ` of ${doc.file_name}`)),
              h("button", { type: "button", class: "needs-editor", onclick: () => reembed([doc.document_id]) }, "Re-embed", h("span", { class: "visually-hidden" }, ` ${doc.file_name}`)),
              h("button", { type: "button", class: "danger needs-editor", onclick: () => remove(doc) }, "Delete", h("span", { class: "visually-hidden" }, ` ${doc.file_name}`)),
            ),
          ),
        ),
      ),
    );
  }

  async function refresh() {
    if (!collectionId) return;
    const id = collectionId;
    try {
      const answer = await gateway.documents(id);
      if (id !== collectionId) return;
      documents = answer.documents;
      cache(id, "documents", documents);
      render();
    } catch (error) {
      toast(`Could not list the documents of ${id}: ${error.message}`, { error: true });
    }
  }

  async function reembed(ids) {
    try {
      const answer = await gateway.reembed(ids);
      const failed = answer.errors.map((e) => `${e.document_id}: ${e.detail}`).join("; ");
      toast(`Re-embedding ${answer.jobs.length} document(s).${failed ? ` Not re-embedded: ${failed}` : ""}`, { error: Boolean(failed) });
      selected.clear();
      await refresh();
    } catch (error) {
      toast(`Re-embed refused: ${error.message}`, { error: true });
    }
  }

  async function remove(doc, { cancel = false } = {}) {
    const running = doc.status === "processing";
    const body = [
      h("p", {}, `Delete ${doc.file_name} and all its versions? Its passages leave the index and its bytes are removed; the audit log keeps the record.`),
      running ? h("p", { class: "warning" }, "A job of this document is still running.") : null,
    ];
    if (!cancel) {
      const answer = await openDialog(`Delete ${doc.file_name}?`, body, [
        { label: "Delete", value: "delete", class: "danger" },
        { label: "Keep it", value: "cancel" },
      ]);
      if (answer !== "delete") return;
    }
    try {
      await gateway.deleteDocument(doc.document_id, { cancel });
      toast(`${doc.file_name} deleted.`);
      await refresh();
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        const again = await openDialog(
          `${doc.file_name} cannot be deleted yet`,
          [
            h("p", { role: "alert", class: "warning" }, error.message),
            h("p", {}, "Wait until its job has finished, or cancel the job and delete the document now."),
          ],
          [
            { label: "Cancel the job and delete", value: "force", class: "danger" },
            { label: "Wait", value: "cancel" },
          ],
        );
        if (again === "force") await remove(doc, { cancel: true });
        return;
      }
      toast(`Could not delete ${doc.file_name}: ${error.message}`, { error: true });
    }
  }

  async function history(doc) {
    let versions;
    try {
      versions = (await gateway.versions(doc.document_id)).versions;
    } catch (error) {
      toast(`Could not read the versions of ${doc.file_name}: ${error.message}`, { error: true });
      return;
    }
    const pick = (id, label, index) =>
      h("select", { id, "aria-label": label }, versions.map((v, i) => h("option", { value: v.version, selected: i === index }, `version ${v.version}`)));
    const from = pick("compare-from", "Compare from version", Math.max(0, versions.length - 2));
    const to = pick("compare-to", "Compare to version", versions.length - 1);
    const result = h("div", { class: "compare", "aria-live": "polite" });
    const compare = async () => {
      try {
        const diff = await gateway.compare(doc.document_id, from.value, to.value);
        const list = (title, items, text) =>
          h("div", {}, h("h4", {}, `${title} (${items.length})`),
            items.length ? h("ul", {}, items.slice(0, 50).map((c) => h("li", {}, h("span", { class: "hint" }, (c.heading_path || []).join(" › ") || `chunk ${c.index}`), h("p", {}, text(c))))) : h("p", { class: "hint" }, "none"));
        clear(result,
          h("p", {}, `${diff.unchanged} chunks unchanged.`),
          list("Added", diff.added, (c) => c.text),
          list("Removed", diff.removed, (c) => c.text),
          list("Changed", diff.changed, (c) => `${c.before} → ${c.text}`));
      } catch (error) {
        clear(result, h("p", { role: "alert", class: "warning" }, error.message));
      }
    };
    const rows = versions.map((v) =>
      h("tr", {}, h("td", {}, v.version), h("td", {}, v.label || ""), h("td", {}, v.status), h("td", {}, formatBytes(v.size_bytes)),
        h("td", {}, v.chunk_count ?? "–"), h("td", {}, v.uploaded_by), h("td", {}, v.reason || ""), h("td", {}, formatTime(v.created_at))));
    await openDialog(`Versions of ${doc.file_name}`, [
      h("table", { class: "versions" },
        h("thead", {}, h("tr", {}, ["Version", "Label", "Status", "Size", "Chunks", "Uploader", "Reason", "Created"].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, rows)),
      versions.length > 1
        ? h("div", { class: "toolbar" }, from, h("span", {}, "→"), to, h("button", { type: "button", onclick: compare }, "Compare"))
        : h("p", { class: "hint" }, "Only one version so far: upload the file again with changes (same name) to make the next one."),
      result,
    ]);
  }

  return {
    element,
    refresh,
    load(id) {
      collectionId = id;
      selected.clear();
      documents = cached(id, "documents") || [];
      renderColumnsMenu();
      render();
      refresh();
    },
    jobChanged(job) {
      const known = documents.some((d) => d.job_id === job.job_id);
      if (known) render();
      // a document this list does not show yet, or a job that ended: read the list again (once)
      if (!known || ["indexed", "failed", "cancelled", "deleted"].includes(job.status)) {
        clearTimeout(refreshTimer);
        refreshTimer = setTimeout(refresh, known ? 300 : 1000);
      }
    },
  };
}
