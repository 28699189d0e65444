// Ingest view: the collection's settings, drag-and-drop (or a file picker) uploads with a progress
// bar per file and for the batch, fed by the progress service's WebSocket feed, and the sources.

import { ApiError, gateway, watchJobs } from "./api.js";
import { clear, formatEta, h, toast } from "./dom.js";
import { mountSources } from "./sources.js";
import { cache, cached } from "./view-state.js";

const FINAL = new Set(["indexed", "failed", "cancelled", "deleted"]);

function newBatchId() {
  return `web-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
}

function settingsPanel(context) {
  const chunking = h(
    "select",
    { id: "chunking", name: "chunking" },
    ["structure", "tokens", "markdown"].map((v) => h("option", { value: v }, v)),
  );
  const embed = h("input", { id: "embed-columns", name: "embed_columns", placeholder: "all columns" });
  const contextColumns = h("input", { id: "context-columns", name: "context_columns", placeholder: "none" });
  const note = h("p", { class: "hint", "aria-live": "polite" });
  const list = (input) =>
    input.value
      .split(",")
      .map((v) => v.trim())
      .filter(Boolean);
  const fill = (collection) => {
    chunking.value = collection?.chunking || "structure";
    embed.value = (collection?.embed_columns || []).join(", ");
    contextColumns.value = (collection?.context_columns || []).join(", ");
    note.textContent = collection ? `${collection.document_count} documents · model ${collection.embedding_model}` : "";
  };
  const form = h(
    "form",
    {
      class: "settings",
      onsubmit: async (event) => {
        event.preventDefault();
        const id = context.collection();
        try {
          const answer = await gateway.updateCollection(id, {
            chunking: chunking.value,
            embed_columns: list(embed),
            context_columns: list(contextColumns),
          });
          cache(id, "settings", answer);
          fill(answer);
          const jobs = answer.reembed?.jobs?.length || 0;
          toast(jobs ? `Saved; re-embedding ${jobs} documents.` : "Saved.");
        } catch (error) {
          toast(`Could not save the settings of ${id}: ${error.message}`, { error: true });
        }
      },
    },
    h("div", { class: "field" }, h("label", { for: "chunking" }, "Chunking"), chunking),
    h("div", { class: "field" }, h("label", { for: "embed-columns" }, "Embedded columns (tables)"), embed),
    h("div", { class: "field" }, h("label", { for: "context-columns" }, "Context columns (tables)"), contextColumns),
    h("button", { type: "submit", class: "needs-editor" }, "Save settings"),
    note,
  );
  const panel = h("details", { class: "card needs-editor" }, h("summary", {}, "Collection settings"), form);
  return {
    panel,
    async load(id) {
      fill(cached(id, "settings")); // at once, then fresh
      try {
        const fresh = await gateway.collection(id);
        cache(id, "settings", fresh);
        if (id === context.collection()) fill(fresh);
      } catch (error) {
        if (error instanceof ApiError && error.status === 404) {
          fill(null);
          note.textContent = "This collection is created by its first upload.";
        }
      }
    },
  };
}

export function mountIngest(section, context) {
  const uploads = new Map(); // key -> {file, row, jobId, job, error}
  const jobs = new Map(); // job_id -> latest job from the feed
  let batchId = newBatchId();
  let stopFeed = null;
  let feedCollection = null;

  const settings = settingsPanel(context);
  const input = h("input", { type: "file", id: "file-input", multiple: true, hidden: true, tabindex: "-1" });
  const pick = h("button", { type: "button", class: "primary", onclick: () => input.click() }, "Choose files");
  const dropzone = h(
    "div",
    { class: "dropzone needs-editor", id: "dropzone" },
    h("p", {}, "Drop files here to add them to this collection"),
    h("p", {}, "or ", pick, input),
    h("p", { class: "hint" }, "PDF, Word, PowerPoint, Excel, OpenDocument, HTML, Markdown, text, CSV, e-mail, Parquet"),
  );
  const batchBar = h("progress", { id: "batch-progress", max: 100, value: 0, "aria-label": "Batch progress" });
  const batchText = h("span", { id: "batch-text", "aria-live": "polite" });
  const batchBox = h("div", { class: "batch", hidden: true }, h("strong", {}, "This batch"), batchBar, batchText);
  const fileList = h("ul", { class: "uploads", id: "uploads", "aria-label": "Uploads" });
  const feedState = h("span", { class: "feed-state", id: "feed-state" }, "");
  const sources = mountSources(context, { liveJob: (jobId) => jobs.get(jobId) });

  clear(
    section,
    h("h2", { id: "ingest-title" }, "Ingest ", feedState),
    settings.panel,
    dropzone,
    batchBox,
    fileList,
    sources.element,
  );

  function renderUpload(item) {
    const job = item.job;
    const percent = item.error ? 0 : job ? job.percent : item.unchanged ? 100 : 0;
    const done = job?.status === "indexed" || item.unchanged;
    let text = item.sent === undefined ? "uploading…" : `uploading ${Math.round(item.sent * 100)}%`;
    if (item.error) text = item.error;
    else if (item.unchanged) text = `unchanged: version ${item.unchanged} is already indexed`;
    else if (job?.status === "failed") text = `failed in ${job.error?.stage || job.stage}: ${job.error?.reason || ""}`;
    else if (job?.status === "cancelled") text = "cancelled";
    else if (done) text = `indexed · ${job.counts?.chunks ?? "?"} chunks`;
    else if (job) text = [job.stage, job.paused ? "paused" : "", formatEta(job.eta_seconds)].filter(Boolean).join(" · ");
    else if (item.jobId) text = "queued";
    const failed = Boolean(item.error) || job?.status === "failed" || job?.status === "cancelled";
    item.row.className = failed ? "upload failed" : done ? "upload done" : "upload";
    if (item.jobId) item.row.dataset.jobId = item.jobId;
    clear(
      item.row,
      h("span", { class: "name" }, item.file.name),
      h("progress", { max: 100, value: percent, "aria-label": `Progress of ${item.file.name}` }),
      h("span", { class: "percent" }, `${Math.round(percent)}%`),
      h("span", { class: "stage", role: failed ? "alert" : null }, text),
      failed ? h("button", { type: "button", class: "needs-editor", onclick: () => retry(item) }, `Retry ${item.file.name}`) : null,
    );
    renderBatch();
  }

  function renderBatch() {
    const items = [...uploads.values()].filter((i) => i.batchId === batchId);
    batchBox.hidden = items.length === 0;
    if (!items.length) return;
    const finished = (i) => i.error || i.unchanged || FINAL.has(i.job?.status);
    // a file that ended (indexed, unchanged, failed or refused) counts as complete for the batch
    const percent = items.reduce((sum, i) => sum + (finished(i) ? 100 : i.job?.percent || 0), 0) / items.length;
    const failed = items.filter((i) => i.error || i.job?.status === "failed").length;
    const eta = Math.max(0, ...items.filter((i) => !finished(i)).map((i) => i.job?.eta_seconds || 0));
    batchBar.value = percent;
    const parts = [`${Math.round(percent)}%`, `${items.filter(finished).length} of ${items.length} done`];
    if (failed) parts.push(`${failed} failed`);
    if (eta) parts.push(formatEta(eta));
    batchText.textContent = parts.join(" · ");
    if (items.every(finished)) sources.refresh();
  }

  async function send(item) {
    item.error = null;
    item.job = null;
    item.unchanged = null;
    item.sent = undefined;
    renderUpload(item);
    try {
      const answer = await gateway.upload(
        context.collection(),
        item.file,
        { priority: "high", batch_id: item.batchId },
        (fraction) => {
          item.sent = fraction;
          if (!item.jobId) renderUpload(item);
        },
      );
      item.jobId = answer.job_id;
      if (answer.unchanged) item.unchanged = answer.version;
      item.job = answer.unchanged ? null : jobs.get(answer.job_id) || null;
    } catch (error) {
      item.error = `refused (${error.status || "network"}): ${error.message}`; // the gateway names what it accepts
    }
    renderUpload(item);
  }

  async function retry(item) {
    if (item.job && (item.job.status === "failed" || item.job.status === "cancelled")) {
      try {
        await gateway.retryJob(item.jobId);
        item.job = { ...item.job, status: "uploaded", stage: "queued", percent: 0, error: null };
        renderUpload(item);
        return;
      } catch (error) {
        toast(`Retry of ${item.file.name} failed: ${error.message}`, { error: true });
        return;
      }
    }
    await send(item);
  }

  function addFiles(files) {
    if (!files.length) return;
    const busy = [...uploads.values()].some((i) => i.batchId === batchId && !i.error && !FINAL.has(i.job?.status) && !i.unchanged);
    if (!busy) {
      batchId = newBatchId();
      for (const [key, item] of [...uploads]) if (item.batchId !== batchId) uploads.delete(key);
      fileList.replaceChildren();
    }
    for (const file of files) {
      const item = { file, batchId, row: h("li", { class: "upload" }), jobId: null, job: null, error: null };
      uploads.set(`${batchId}/${file.name}/${uploads.size}`, item);
      fileList.append(item.row);
      send(item);
    }
  }

  input.addEventListener("change", () => {
    addFiles([...input.files]);
    input.value = "";
  });
  for (const name of ["dragenter", "dragover"]) {
    dropzone.addEventListener(name, (event) => {
      event.preventDefault();
      dropzone.classList.add("over");
    });
  }
  dropzone.addEventListener("dragleave", () => dropzone.classList.remove("over"));
  dropzone.addEventListener("drop", (event) => {
    event.preventDefault();
    dropzone.classList.remove("over");
    addFiles([...(event.dataTransfer?.files || [])]);
  });

  function onJob(job) {
    jobs.set(job.job_id, job);
    for (const item of uploads.values()) {
      if (item.jobId === job.job_id) {
        item.job = job;
        renderUpload(item);
      }
    }
    sources.jobChanged(job);
  }

  function follow(collectionId) {
    if (feedCollection === collectionId) return;
    stopFeed?.();
    jobs.clear();
    feedCollection = collectionId;
    stopFeed = watchJobs(collectionId, onJob, (s) => {
      feedState.textContent = s === "live" ? "· live" : "· reconnecting…";
    });
  }

  return {
    collectionChanged(collectionId) {
      uploads.clear();
      fileList.replaceChildren();
      batchBox.hidden = true;
      settings.load(collectionId);
      sources.load(collectionId);
    },
    show(collectionId) {
      follow(collectionId);
      sources.refresh();
    },
    hide() {},
  };
}
