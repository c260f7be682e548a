// The "Activity" page: two tabs, the org's request log (requests.js) and its audit log
// (audit.js), and whether the org logs the content of its requests (owners may change that).

import { MEMBERS } from "./access.js";
import { api, seg } from "./api.js";
import { auditPanel } from "./audit.js";
import { h, replace } from "./dom.js";
import { confirmAction } from "./forms.js";
import { requestsPanel } from "./requests.js";

const TAB_KEY = "patchbay.activityTab";
const TABS = [
  { id: "requests", label: "Requests", fill: requestsPanel },
  { id: "audit", label: "Audit log", fill: auditPanel },
];

export async function activityPage(root, context) {
  const { org } = context;
  const heading = h("h1", { tabindex: "-1" }, "Activity");
  const logging = h("section", { class: "content-logging", "aria-labelledby": "logging-title" });
  const tablist = h("div", { role: "tablist", "aria-label": "Activity", class: "tabs" });
  const panels = TABS.map((t) => h("div", { role: "tabpanel", id: `tab-panel-${t.id}`, "aria-labelledby": `tab-${t.id}`, tabindex: "0", hidden: true }));
  const tabs = TABS.map((t, i) =>
    h(
      "button",
      { type: "button", role: "tab", id: `tab-${t.id}`, "aria-controls": `tab-panel-${t.id}`, onclick: () => select(i, true), onkeydown: (e) => arrows(e, i) },
      t.label,
    ),
  );
  tablist.append(...tabs);
  replace(
    root,
    heading,
    h("p", { class: "lead" }, `What happened in ${org.name}: the requests apps made with its keys, and who changed what.`),
    logging,
    tablist,
    panels,
  );

  function arrows(event, index) {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (step === undefined) return;
    event.preventDefault();
    select((index + step + TABS.length) % TABS.length, true);
    tabs[(index + step + TABS.length) % TABS.length].focus();
  }

  async function select(index, announce) {
    sessionStorage.setItem(TAB_KEY, TABS[index].id);
    tabs.forEach((tab, i) => {
      tab.setAttribute("aria-selected", i === index ? "true" : "false");
      tab.tabIndex = i === index ? 0 : -1;
      panels[i].hidden = i !== index;
    });
    const panel = panels[index];
    if (panel.dataset.filled) return;
    panel.dataset.filled = "yes";
    replace(panel, h("p", { class: "muted" }, "Loading…"));
    try {
      await TABS[index].fill(panel, context);
    } catch (error) {
      delete panel.dataset.filled;
      if (error.signIn) return;
      replace(panel, h("p", { class: "error", role: "alert" }, `Could not load this tab: ${error.message}`));
      if (announce) panel.focus();
    }
  }

  await Promise.all([contentLogging(logging, context), select(Math.max(0, TABS.findIndex((t) => t.id === sessionStorage.getItem(TAB_KEY))), false)]);
  return heading;
}

/** The org's content-logging setting, and for owners the switch. */
async function contentLogging(section, { org, access }) {
  const path = `/orgs/${seg(org.id)}/request-log/settings`;
  const title = h("h2", { id: "logging-title" }, "Content logging");
  let settings;
  try {
    settings = await api("GET", path);
  } catch (error) {
    if (error.signIn) return;
    replace(section, title, h("p", { class: "error" }, `Could not read the request log settings: ${error.message}`));
    return;
  }
  const status = h("p", { class: "status", role: "status" });

  function render() {
    const on = settings.content_logging;
    const retention = settings.retention_days
      ? `Requests are kept ${settings.retention_days} days.`
      : "The request log is off on this server (PATCHBAY_REQUEST_LOG_RETENTION_DAYS=0).";
    replace(
      section,
      title,
      h(
        "p",
        { class: "logging-state" },
        h("span", { class: `badge badge-${on ? "active" : "disabled"}` }, on ? "on" : "off"),
        on
          ? " The request log keeps the prompts and completions of this org's requests (each cut at 32 KiB). "
          : " The request log keeps who called, which model, the route and the outcome of each request, never prompts or completions. ",
        retention,
      ),
      access.can(MEMBERS)
        ? h("button", { type: "button", class: on ? "secondary" : "danger", onclick: toggle }, on ? "Turn content logging off" : "Turn content logging on")
        : null,
      status,
    );
  }

  async function toggle() {
    const enable = !settings.content_logging;
    if (enable) {
      const ok = await confirmAction({
        title: "Log the content of requests?",
        message: "From now on the prompts and completions of this org's requests are stored with the request log and shown here to everyone who can see this org.",
        confirmLabel: "Turn on",
      });
      if (!ok) return;
    }
    try {
      settings = await api("PUT", path, { content_logging: enable });
      render();
      status.textContent = `Content logging is ${settings.content_logging ? "on" : "off"}.`;
      section.querySelector("button")?.focus();
    } catch (error) {
      status.textContent = `Could not change content logging: ${error.message}`;
    }
  }

  render();
}
