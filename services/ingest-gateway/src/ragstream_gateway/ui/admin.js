// Admin view: queue depth by stage and lane, running and failed jobs, dead letters with replay,
// pause/resume per collection, and the tenant's limits and usage (every member: why am I
// refused?) with its browser origins (admins edit them). Refreshed every few seconds while shown.

import { gateway, progress } from "./api.js";
import { clear, formatBytes, formatEta, formatTime, h, toast } from "./dom.js";

const REFRESH_MS = 4000;

function table(caption, headers, rows, emptyText) {
  if (!rows.length) return h("p", { class: "empty" }, emptyText);
  return h("table", {}, h("caption", { class: "visually-hidden" }, caption),
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))), h("tbody", {}, rows));
}

export function mountAdmin(section, context) {
  let timer = null;
  const queueBox = h("div", { id: "queue-depth" });
  const collectionsBox = h("div", { id: "collections-control" });
  const runningBox = h("div", { id: "running-jobs" });
  const failedBox = h("div", { id: "failed-jobs" });
  const lettersBox = h("div", { id: "dead-letters" });
  const limitsBox = h("div", { id: "tenant-limits" });
  const originsBox = h("div", { id: "tenant-origins" });
  const isAdmin = () => document.body.dataset.role === "admin";
  const updated = h("span", { class: "hint", "aria-live": "off" });
  const card = (id, title, box, wide = false) =>
    h("section", { class: wide ? "card wide" : "card", "aria-labelledby": id }, h("h3", { id }, title), box);
  clear(
    section,
    h("div", { class: "toolbar" }, h("h2", { id: "admin-title" }, "Admin"), updated,
      h("button", { type: "button", onclick: () => refresh() }, "Refresh")),
    h("div", { class: "admin-grid" },
      card("queue-title", "Queue depth", queueBox),
      card("collections-title", "Collections", collectionsBox),
      card("running-title", "Running jobs", runningBox, true),
      card("failed-title", "Failed jobs", failedBox, true),
      card("letters-title", "Dead letters", lettersBox, true),
      card("limits-title", "Tenant limits", limitsBox),
      h("section", { class: "card needs-admin", "aria-labelledby": "origins-title" },
        h("h3", { id: "origins-title" }, "Browser origins"), originsBox)),
  );

  async function act(promise, done) {
    try {
      await promise;
      toast(done);
    } catch (error) {
      toast(error.message, { error: true });
    }
    await refresh();
  }

  function renderQueue(queue) {
    const rows = queue.stages.map((stage) =>
      h("tr", {}, h("th", { scope: "row" }, stage),
        queue.lanes.map((lane) => {
          const held = queue.paused[stage][lane];
          return h("td", { dataset: { stage, lane } }, String(queue.depth[stage][lane]), held ? h("span", { class: "hint" }, ` (+${held} paused)`) : "");
        })));
    clear(queueBox,
      h("table", {}, h("caption", { class: "visually-hidden" }, "Unfinished jobs by stage and lane"),
        h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Stage"), queue.lanes.map((l) => h("th", { scope: "col" }, `${l} lane`)))),
        h("tbody", {}, rows)),
      h("p", { class: "hint" }, `At most ${queue.released_limit} jobs in the pipeline at once, ${queue.collection_concurrency} per collection while others wait.`));
    const collections = queue.collections.map((c) =>
      h("tr", { dataset: { collection: c.collection_id } }, h("th", { scope: "row" }, c.collection_id), h("td", {}, c.paused ? "paused" : "active"),
        h("td", {}, String(c.queued)), h("td", {}, String(c.running)),
        h("td", {}, h("button", {
          type: "button",
          class: "needs-editor",
          onclick: () => act(gateway.steerCollection(c.collection_id, c.paused ? "resume" : "pause"), `${c.collection_id} ${c.paused ? "resumed" : "paused"}.`),
        }, c.paused ? "Resume" : "Pause", h("span", { class: "visually-hidden" }, ` ${c.collection_id}`)))));
    clear(collectionsBox, table("Collections", ["Collection", "State", "Queued", "Running", ""], collections,
      "No collections yet: create one with New collection, or upload files on the Ingest view."));
  }

  function renderJobs(box, jobs, { failed }) {
    const rows = jobs.map((j) =>
      h("tr", {}, h("th", { scope: "row" }, j.file_name), h("td", {}, j.collection_id), h("td", {}, j.priority),
        failed
          ? h("td", {}, `${j.error?.stage || j.stage}: ${j.error?.reason || ""}`, j.error?.hint ? h("span", { class: "hint" }, ` (${j.error.hint})`) : "")
          : h("td", {}, `${j.stage} ${Math.round(j.percent)}%${j.paused ? " · paused" : ""} ${formatEta(j.eta_seconds)}`),
        h("td", {}, formatTime(j.updated_at)),
        failed ? h("td", {}, h("button", { type: "button", class: "needs-editor", onclick: () => act(gateway.retryJob(j.job_id), `${j.file_name} queued again.`) }, "Retry", h("span", { class: "visually-hidden" }, ` ${j.file_name}`))) : null));
    clear(box, table(failed ? "Failed jobs" : "Running jobs",
      ["File", "Collection", "Lane", failed ? "Reason" : "Stage", "Updated", ...(failed ? [""] : [])], rows,
      failed ? "No failed jobs." : "Nothing is running. Uploads on the Ingest view show up here while they are processed."));
  }

  function renderLetters(letters) {
    const rows = letters.map((d) =>
      h("tr", {}, h("th", { scope: "row" }, String(d.sequence)), h("td", {}, d.stage), h("td", {}, d.file_name || d.event_type || "–"),
        h("td", {}, d.reason), h("td", {}, String(d.deliveries)), h("td", {}, formatTime(d.dead_lettered_at)),
        h("td", {}, d.replayed_at ? `replayed ${formatTime(d.replayed_at)}` : h("button", {
          type: "button", class: "needs-editor", onclick: () => act(gateway.replay(d.sequence), `Dead letter ${d.sequence} replayed.`),
        }, "Replay", h("span", { class: "visually-hidden" }, ` dead letter ${d.sequence}`)))));
    clear(lettersBox, table("Dead letters", ["#", "Stage", "File", "Reason", "Deliveries", "When", ""], rows,
      "No dead letters: no stage has given up on a message."));
  }

  function renderLimits(body) {
    const limit = (n, unit) => (n ? `${n.toLocaleString()} ${unit}` : "no limit");
    const quota = (used, max, format) => `${format(used)} of ${max ? format(max) : "no limit"}`;
    const rows = [
      ["Uploads per key", limit(body.limits.upload_per_key, `per ${body.window_s} s`)],
      ["Uploads, whole tenant", limit(body.limits.upload_per_tenant, `per ${body.window_s} s`)],
      ["Questions per key", limit(body.limits.chat_per_key, `per ${body.window_s} s`)],
      ["Questions, whole tenant", limit(body.limits.chat_per_tenant, `per ${body.window_s} s`)],
      ["Stored", quota(body.usage.bytes, body.limits.quota_bytes, formatBytes)],
      ["Documents", quota(body.usage.documents, body.limits.quota_documents, (n) => n.toLocaleString())],
    ].map(([name, value]) => h("tr", {}, h("th", { scope: "row" }, name), h("td", { dataset: { limit: name } }, value)));
    clear(limitsBox, table(`Limits of tenant ${body.tenant_id}`, ["Limit", "In force"], rows, ""),
      h("p", { class: "hint" }, "A tenant's admins change them with PUT /v1/tenant/limits."));
  }

  // the origins are edited in place: a refresh while the admin types must not replace the text
  let originsShown = false;
  function renderOrigins(body) {
    if (originsShown && originsBox.contains(document.activeElement)) return;
    originsShown = true;
    const field = h("textarea", { id: "origins-input", rows: 4, spellcheck: "false", "aria-describedby": "origins-hint" },
      body.origins.join("\n"));
    const save = async (event) => {
      event.preventDefault();
      const origins = field.value.split(/\s+/).filter(Boolean);
      try {
        const stored = await gateway.setTenantOrigins(origins);
        toast(`${stored.origins.length} origin${stored.origins.length === 1 ? "" : "s"} saved.`);
        originsShown = false;
        renderOrigins(stored);
      } catch (error) {
        toast(error.message, { error: true });
      }
    };
    clear(originsBox, h("form", { onsubmit: save },
      h("label", { for: "origins-input" }, "Pages whose scripts may use this tenant's keys, one origin per line"),
      field,
      h("p", { id: "origins-hint", class: "hint" }, "scheme://host[:port], e.g. https://intranet.example.com",
        body.global_origins.length ? `; every tenant also has ${body.global_origins.join(", ")}` : ""),
      h("button", { type: "submit" }, "Save origins")));
  }

  async function refresh() {
    const settle = async (promise, box, render) => {
      try {
        render(await promise);
      } catch (error) {
        clear(box, h("p", { role: "alert", class: "warning" }, error.message));
      }
    };
    await Promise.all([
      settle(gateway.queue(), queueBox, renderQueue),
      settle(progress.jobs({ status: "released,parsing,parsed,embedding", limit: 50 }), runningBox, (a) => renderJobs(runningBox, a.jobs, { failed: false })),
      settle(progress.jobs({ status: "failed", limit: 50 }), failedBox, (a) => renderJobs(failedBox, a.jobs, { failed: true })),
      settle(gateway.deadLetters(), lettersBox, (a) => renderLetters(a.dead_letters)),
      settle(gateway.tenantLimits(), limitsBox, renderLimits),
      isAdmin() ? settle(gateway.tenantOrigins(), originsBox, renderOrigins) : null,
    ]);
    updated.textContent = `updated ${new Date().toLocaleTimeString()}`;
  }

  return {
    show() {
      clearInterval(timer);
      refresh();
      timer = setInterval(() => {
        if (!document.hidden) refresh();
      }, REFRESH_MS);
    },
    hide() {
      clearInterval(timer);
      timer = null;
    },
  };
}
