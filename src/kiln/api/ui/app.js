// kiln dashboard: polls GET /v1/dashboard with the read-only bearer token and renders it.
//
// Security: the token arrives in the URL fragment (#token=...), which browsers never
// send to a server. It is moved to sessionStorage (this tab only) and the fragment is
// removed from the address bar and history at once. Every value from the API is put
// in the page with textContent, never parsed as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "kiln.dashboard.token";
  const POLL_MS = 1000;
  const STALE_MS = 5000;
  const MAX_BACKOFF_MS = 10000;

  let token = null;
  let lastOk = null; // Date of the last good answer
  let lastShown = ""; // the last document rendered, to skip identical redraws
  let failures = 0;
  let timer = null;
  let state = "connecting";

  const $ = (id) => document.getElementById(id);

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  // --- the token -------------------------------------------------------------------

  function takeTokenFromFragment() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    const fresh = params.get("token");
    if (window.location.hash) {
      // Strip the fragment (and with it the token) from the address bar and history.
      history.replaceState(null, "", window.location.pathname + window.location.search);
    }
    if (fresh) sessionStorage.setItem(TOKEN_KEY, fresh);
    return sessionStorage.getItem(TOKEN_KEY);
  }

  // --- connection state ------------------------------------------------------------

  function clock(date) {
    return date ? date.toLocaleTimeString([], { hour12: false }) : "never";
  }

  function ago(date) {
    if (!date) return "";
    const seconds = Math.max(0, Math.round((Date.now() - date.getTime()) / 1000));
    return seconds < 2 ? "just now" : `${seconds} s ago`;
  }

  function showConnection() {
    const box = $("connection");
    let text;
    let cls;
    if (state === "live" && lastOk && Date.now() - lastOk.getTime() > STALE_MS) {
      cls = "stale";
      text = `stale · last updated ${clock(lastOk)} (${ago(lastOk)})`;
    } else if (state === "live") {
      cls = "live";
      text = `live · updated ${clock(lastOk)}`;
    } else if (state === "down") {
      cls = "down";
      text = `disconnected · last updated ${clock(lastOk)}${lastOk ? ` (${ago(lastOk)})` : ""} · retrying`;
    } else if (state === "refused") {
      cls = "down";
      text = "not authorised";
    } else if (state === "no-token") {
      cls = "down";
      text = "no token";
    } else {
      cls = "";
      text = "connecting…";
    }
    box.className = `connection ${cls}`;
    box.dataset.state = state;
    $("connection-text").textContent = text;
  }

  function problem(title, text) {
    const box = $("problem");
    if (!title) {
      box.hidden = true;
      return;
    }
    $("problem-title").textContent = title;
    $("problem-text").textContent = text;
    box.hidden = false;
  }

  // --- polling ---------------------------------------------------------------------

  function schedule(ms) {
    clearTimeout(timer);
    timer = setTimeout(poll, ms);
  }

  async function poll() {
    let response;
    try {
      response = await fetch("/v1/dashboard", {
        headers: { Authorization: `Bearer ${token}`, Accept: "application/json" },
        cache: "no-store",
        credentials: "omit",
        referrerPolicy: "no-referrer",
      });
    } catch (err) {
      return disconnected("the controller does not answer");
    }
    if (response.status === 401 || response.status === 403) {
      state = "refused";
      showConnection();
      problem(
        `The controller refused this token (${response.status})`,
        "Run `kiln dashboard` again and open the link it prints. Nothing is shown without a valid read token."
      );
      $("environments").replaceChildren();
      $("ledger").hidden = true;
      lastShown = "";
      return; // no retry: the same token will be refused again
    }
    if (!response.ok) {
      return disconnected(`the controller answered ${response.status}`);
    }
    let data;
    try {
      data = await response.json();
    } catch (err) {
      return disconnected("the controller sent an unreadable answer");
    }
    failures = 0;
    state = "live";
    lastOk = new Date();
    problem(null);
    showConnection();
    render(data);
    schedule(POLL_MS);
  }

  function disconnected(why) {
    failures += 1;
    state = "down";
    showConnection();
    problem("Disconnected", `${why}; the figures below are from ${clock(lastOk)} and may be out of date.`);
    schedule(Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.min(failures, 4)));
  }

  // --- rendering -------------------------------------------------------------------

  function render(data) {
    const comparable = JSON.stringify({ ...data, generated: null });
    if (comparable === lastShown) return;
    lastShown = comparable;
    $("service").textContent = data.service ? `· ${data.service}` : "";
    document.title = data.service ? `kiln · ${data.service}` : "kiln dashboard";
    const envs = data.environments || [];
    $("environments").replaceChildren(
      ...(envs.length ? envs.map(environment) : [el("p", { class: "panel muted", text: "No environments: this controller serves no kiln.yaml." })])
    );
    ledger(data.ledger || {});
  }

  function releaseLabel(release) {
    if (!release) return "none";
    const version = release.version ? `${release.version} ` : "";
    const digest = release.short ? `sha256:${release.short}` : release.id;
    return `${version}${digest}`;
  }

  function releaseFacts(release) {
    if (!release) return el("p", { class: "muted", text: "No release yet." });
    return el(
      "dl",
      { class: "facts" },
      el("dt", { text: "version" }),
      el("dd", { class: "version", text: release.version || "–" }),
      el("dt", { text: "digest" }),
      el("dd", { class: "mono digest", title: release.artifact || "", text: release.short ? `sha256:${release.short}` : "–" }),
      el("dt", { text: "tags" }),
      el("dd", { class: "tags", text: (release.tags || []).join(", ") || "–" }),
      el("dt", { text: "release" }),
      el("dd", { class: "mono", text: release.id })
    );
  }

  const PHASE_BADGE = {
    provisioning: "info",
    stepping: "info",
    "rolling-back": "bad",
    "rolled-back": "bad",
    succeeded: "ok",
  };
  const STEP_MARK = { done: "✓", current: "▶", stopped: "✗", skipped: "–", pending: "·" };

  function until(iso) {
    if (!iso) return "none";
    const at = new Date(iso);
    const seconds = Math.round((at.getTime() - Date.now()) / 1000);
    const rel = seconds >= 0 ? `in ${seconds} s` : `${-seconds} s ago`;
    return `${clock(at)} (${rel})`;
  }

  function number(value) {
    if (typeof value !== "number") return String(value);
    return Number.isInteger(value) ? String(value) : value.toPrecision(4).replace(/\.?0+$/, "");
  }

  function rollout(env) {
    const r = env.rollout;
    const parts = [el("h3", { text: "Rollout" })];
    if (!r) {
      parts.push(el("p", { class: "muted", text: "No rollout yet." }));
      return parts;
    }
    parts.push(
      el(
        "dl",
        { class: "facts" },
        el("dt", { text: "phase" }),
        el("dd", {}, el("span", { class: `badge phase ${PHASE_BADGE[r.phase] || "info"}`, text: r.phase })),
        el("dt", { text: "candidate" }),
        el("dd", { class: "candidate", text: releaseLabel(r.candidate) }),
        el("dt", { text: "strategy" }),
        el("dd", { class: "strategy", text: r.strategy || "–" }),
        el("dt", { text: "deadline" }),
        el("dd", { class: "deadline", text: until((r.deadlines || {}).progress) }),
        (r.deadlines || {}).step ? el("dt", { text: "step deadline" }) : null,
        (r.deadlines || {}).step ? el("dd", { text: until(r.deadlines.step) }) : null
      )
    );
    const steps = el("ol", { class: "steps", "aria-label": `Rollout steps of ${env.name}` });
    for (const step of r.steps || []) {
      steps.append(
        el(
          "li",
          { class: step.state, "aria-current": step.state === "current" ? "step" : null, "data-state": step.state },
          el("span", { class: "mark", "aria-hidden": "true", text: STEP_MARK[step.state] || "" }),
          el("span", { class: "name", text: step.name }),
          el("span", { class: "sr-only", text: ` (${step.state})` })
        )
      );
    }
    parts.push(steps);
    const analysis = r.analysis || {};
    const metrics = Object.keys(analysis).sort();
    if (metrics.length) {
      const body = el("tbody");
      for (const metric of metrics) {
        const figures = Object.entries(analysis[metric])
          .sort()
          .map(([k, v]) => `${k}=${number(v)}`)
          .join("  ");
        body.append(el("tr", {}, el("td", { text: metric }), el("td", { class: "mono", text: figures })));
      }
      parts.push(
        el(
          "div",
          { class: "table-wrap analysis" },
          el(
            "table",
            {},
            el("caption", { class: "sr-only", text: "Analysis figures" }),
            el("thead", {}, el("tr", {}, el("th", { scope: "col", text: "metric" }), el("th", { scope: "col", text: "figures" }))),
            body
          )
        )
      );
    }
    const verdict = r.reason || env.note || env.error;
    if (verdict) {
      const bad = r.phase === "rolled-back" || r.phase === "rolling-back" || Boolean(env.error);
      parts.push(el("p", { class: `verdict ${bad ? "bad" : ""}`, text: `verdict: ${verdict}` }));
    }
    return parts;
  }

  function releasesById(env) {
    const byId = {};
    for (const release of [env.stable, env.rollout && env.rollout.stable, env.rollout && env.rollout.candidate]) {
      if (release && release.id) byId[release.id] = release;
    }
    return byId;
  }

  function weights(env) {
    const list = env.weights || [];
    const parts = [el("h3", { text: "Traffic" })];
    if (!list.length) {
      const plane = env.dataPlane || {};
      parts.push(el("p", { class: "muted", text: plane.detail || "No route table yet." }));
      return parts;
    }
    const known = releasesById(env);
    const grid = el("div", { class: "weights", role: "group", "aria-label": `Traffic weights of ${env.name}` });
    for (const w of list) {
      const label = `${w.role}: ${releaseLabel(known[w.release] || { id: w.release })}${w.preview ? " (preview)" : ""}`;
      grid.append(
        el("span", { class: "who", "data-release": w.release, "data-role": w.role, text: label }),
        el("meter", { min: 0, max: 100, value: w.weight, "aria-label": `${label} weight` }),
        el("span", { class: "pct", "data-release": w.release, text: `${w.weight}%` })
      );
    }
    parts.push(grid);
    return parts;
  }

  function instances(env) {
    const parts = [el("h3", { text: "Instances" })];
    if (env.instancesError) parts.push(el("p", { class: "verdict bad", text: env.instancesError }));
    const list = env.instances || [];
    if (!list.length) {
      parts.push(el("p", { class: "muted", text: "No instances." }));
      return parts;
    }
    const known = releasesById(env);
    const body = el("tbody");
    for (const i of list) {
      const release = known[i.release];
      body.append(
        el(
          "tr",
          { "data-instance": i.id },
          el("td", { class: "mono", text: i.id }),
          el("td", { text: release ? releaseLabel(release) : i.release }),
          el("td", { class: "mono", text: i.address || "–" }),
          el(
            "td",
            { class: `health health-${i.health.replace(/ /g, "-")}` },
            i.health + (i.failures ? ` (${i.failures} failures)` : "")
          )
        )
      );
    }
    parts.push(
      el(
        "div",
        { class: "table-wrap" },
        el(
          "table",
          {},
          el("caption", { class: "sr-only", text: `Instances of ${env.name}` }),
          el(
            "thead",
            {},
            el(
              "tr",
              {},
              el("th", { scope: "col", text: "instance" }),
              el("th", { scope: "col", text: "release" }),
              el("th", { scope: "col", text: "address" }),
              el("th", { scope: "col", text: "health" })
            )
          ),
          body
        )
      )
    );
    return parts;
  }

  function duration(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    if (seconds < 3600) return `${(seconds / 60).toFixed(1)} min`;
    if (seconds < 172800) return `${(seconds / 3600).toFixed(1)} h`;
    return `${(seconds / 86400).toFixed(1)} days`;
  }

  function dora(env) {
    const d = env.dora;
    const parts = [el("h3", { text: "DORA, last 30 days" })];
    if (!d) {
      parts.push(el("p", { class: "muted", text: "No ledger." }));
      return parts;
    }
    if (d.error) {
      parts.push(el("p", { class: "verdict bad", text: d.error }));
      return parts;
    }
    const rate = d.changeFailureRate.value;
    const cells = [
      ["deployment frequency", `${number(d.deploymentFrequency.value)}/day`, d.deploymentFrequency.band],
      ["lead time", duration(d.leadTime.value), d.leadTime.band],
      ["change failure rate", rate === null ? "–" : `${Math.round(rate * 100)}% (${d.failedDeployments}/${d.deployments})`, d.changeFailureRate.band],
      ["time to restore", duration(d.timeToRestore.value), d.timeToRestore.band],
    ];
    const grid = el("div", { class: "dora" });
    for (const [label, value, band] of cells) {
      grid.append(
        el(
          "div",
          {},
          el("span", { class: "value", text: value }),
          el("span", { class: "label", text: `${label} · ${band}` })
        )
      );
    }
    parts.push(grid);
    return parts;
  }

  function environment(env) {
    const head = el(
      "div",
      { class: "env-head" },
      el("h2", { id: `env-${env.name}`, text: env.name }),
      el("span", { class: `badge ${env.leader ? "ok" : "warn"}`, text: env.leader ? "leader" : "follower" }),
      env.url ? el("a", { href: env.url, rel: "noreferrer noopener", target: "_blank", class: "mono", text: env.url }) : null,
      env.previewUrl ? el("a", { href: env.previewUrl, rel: "noreferrer noopener", target: "_blank", class: "mono", text: `preview ${env.previewUrl}` }) : null
    );
    return el(
      "section",
      { class: "panel env", "data-env": env.name, "aria-labelledby": `env-${env.name}` },
      head,
      env.error && !env.rollout ? el("p", { class: "verdict bad", text: env.error }) : null,
      el("h3", { text: "Stable release" }),
      el("div", { class: "stable" }, releaseFacts(env.stable)),
      ...rollout(env),
      ...weights(env),
      ...instances(env),
      ...dora(env)
    );
  }

  function ledger(l) {
    $("ledger").hidden = false;
    const line = $("ledger-state");
    const checked = l.checked ? ` (checked ${clock(new Date(l.checked))})` : "";
    if (l.verified === true) {
      line.className = "ledger-state ok";
      line.textContent = `✓ verified: ${l.detail}${checked}`;
    } else if (l.verified === false) {
      line.className = "ledger-state bad";
      line.textContent = `✗ NOT verified: ${l.detail}${checked}`;
    } else {
      line.className = "ledger-state";
      line.textContent = `not checked yet${l.detail ? `: ${l.detail}` : ""}`;
    }
    line.dataset.verified = String(l.verified);
    const rows = (l.events || []).map((e) =>
      el(
        "tr",
        { "data-seq": e.seq },
        el("td", { class: "num", text: e.seq }),
        el("td", { text: new Date(e.time).toLocaleString([], { hour12: false }) }),
        el("td", { class: "mono", text: e.kind }),
        el("td", { text: e.actor }),
        el("td", { text: e.environment || "–" }),
        el("td", { class: "mono", text: e.artifact || "–" })
      )
    );
    $("events").replaceChildren(...rows);
  }

  // --- start -----------------------------------------------------------------------

  function start() {
    token = takeTokenFromFragment();
    if (!token) {
      state = "no-token";
      showConnection();
      problem(
        "Not logged in",
        "Open the link `kiln dashboard` prints: it carries a read-only token this tab keeps for its session."
      );
      return;
    }
    state = "connecting";
    lastShown = "";
    showConnection();
    poll();
  }

  window.addEventListener("hashchange", start);
  setInterval(showConnection, 1000);
  start();
})();
