"use strict";
(() => {
  const KEY_STORAGE = "dalet.apiKey";
  const NAMESPACE_STORAGE = "dalet.namespace";
  const SVG_NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#3457d5", "#e8702a", "#12a37a", "#c2418d", "#8a63d2", "#b8950a", "#2a9fc9", "#6b7280"];
  const CONFIDENCES = ["0.9", "0.95", "0.99"];
  const MODES = [["sequential", "Sequential: check any time"], ["fixed", "Fixed horizon: one planned look"]];
  const CORRECTIONS = [["holm", "Holm (family-wise error)"], ["bh", "Benjamini–Hochberg (false discoveries)"], ["none", "None"]];
  const CORRECTION_NAMES = { holm: "Holm", bh: "Benjamini–Hochberg", none: "uncorrected" };
  const FRESHNESS_NOTICE_SECONDS = 5;   // a lag the page mentions: below it reports are as good as live
  // Calls are relative to this page, so behind API Gateway's stage prefix
  // "/api/dashboard" reaches "/api/experiments".
  const API_BASE = new URL(".", window.location.href);

  // What a verdict looks like: an icon and a word as well as a colour, so it reads without colour.
  const VERDICTS = {
    ship: { icon: "✓", word: "Ship" },
    keep_running: { icon: "↻", word: "Keep running" },
    stop: { icon: "✕", word: "Stop" },
    dont_trust: { icon: "!", word: "Don't trust" },
    no_data: { icon: "–", word: "No data" },
  };
  const SOURCE_NAMES = { alephbet: "AlephBet", segment: "Segment" };
  const LIST_VERDICT_CONCURRENCY = 2;   // the list's lazy verdicts: a few requests at a time

  // Sequential (always-valid) figures by default: people look every day, and only those stay valid when they do.
  // Everything but `view` and `dailyMetric` is in the URL fragment, so a link reproduces the view.
  const DEFAULTS = { source: "", control: "", confidence: "0.95", mode: "sequential", correction: "holm", dimension: "",
                     primary: "", guardrails: [], goals: [], value: "", planned: "" };
  const state = { namespace: "alephbet", experiment: null, ...DEFAULTS, dailyMetric: "participants", view: "experiments" };
  let loadSequence = 0;   // answers to superseded requests are dropped
  let listSequence = 0;   // likewise for the experiment list
  let eventsSequence = 0; // likewise for the events view

  // ---------- DOM helpers: text only, never markup ----------
  function el(tag, attributes, ...children) {
    return build(document.createElement(tag), attributes, children);
  }
  function svg(tag, attributes, ...children) {
    return build(document.createElementNS(SVG_NS, tag), attributes, children);
  }
  function build(node, attributes, children) {
    for (const [name, value] of Object.entries(attributes || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (name === "text") node.textContent = String(value);
      else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  const $ = (id) => document.getElementById(id);

  // ---------- number formatting (the test suite rounds the API's numbers the same way) ----------
  const isNumber = (x) => typeof x === "number" && Number.isFinite(x);
  const percent = (x, digits = 2) => isNumber(x) ? (x * 100).toFixed(digits) + "%" : "—";
  const signedPercent = (x, digits = 1) => isNumber(x) ? (x > 0 ? "+" : "") + (x * 100).toFixed(digits) + "%" : "—";
  const pValue = (p) => !isNumber(p) ? "—" : p < 0.0001 ? "< 0.0001" : p.toFixed(4);
  const pIs = (p) => !isNumber(p) ? "p unknown" : p < 0.0001 ? "p < 0.0001" : `p = ${p.toFixed(4)}`;
  const axisPercent = (x) => percent(x, Number.isInteger(Math.round(x * 1e6) / 1e4) ? 0 : 1);
  const integer = (n) => isNumber(n) ? String(Math.round(n)) : "—";
  const interval = (ci, format) => Array.isArray(ci) && ci.length === 2 && isNumber(ci[0]) && isNumber(ci[1])
    ? `${format(ci[0])} to ${format(ci[1])}` : "";
  const signedDecimal = (x) => isNumber(x) ? (x > 0 ? "+" : "") + decimal(x) : "—";
  const plural = (n, noun) => `${n} ${noun}${n === 1 ? "" : "s"}`;
  const decimal = (x) => isNumber(x) ? (Math.abs(x) >= 10000 ? x.toFixed(0) : x.toFixed(2)) : "—";

  // ---------- names that could pass for others ----------
  // Invisible and direction-changing characters (format characters such as U+202E RIGHT-TO-LEFT
  // OVERRIDE or U+200B ZERO WIDTH SPACE, and spaces other than the plain one) are shown as \uXXXX
  // where a name must be read exactly: the delete confirmation and the Events list (names tracked
  // before ingestion refused these characters).
  const DISGUISING = /[\p{Cf}\p{Zs}\p{Zl}\p{Zp}\p{Co}]/gu;
  function visibleName(name) {
    return name.replace(DISGUISING, (character) => character === " " ? character
      : "\\u" + character.codePointAt(0).toString(16).toUpperCase().padStart(4, "0"));
  }

  // ---------- freshness: how far the reports are behind the stream ----------
  function showFreshness(freshness) {
    const box = $("freshness");
    const lag = freshness && isNumber(freshness.lag_seconds) ? freshness.lag_seconds : null;
    if (lag === null || lag <= FRESHNESS_NOTICE_SECONDS) { box.hidden = true; box.textContent = ""; return; }
    const asOf = typeof freshness.as_of === "string" ? freshness.as_of.replace("T", " ").replace(/\.\d+Z$/, " UTC") : "";
    box.textContent = `Reports are ${duration(lag)} behind the event stream: events received after ${asOf} are not counted yet.`;
    box.hidden = false;
  }
  function duration(seconds) {
    if (seconds < 120) return `${Math.round(seconds)} s`;
    if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
    return `${(seconds / 3600).toFixed(1)} h`;
  }

  // ---------- API ----------
  class ApiError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  function apiUrl(path, params) {
    const url = new URL(path, API_BASE);
    for (const [name, value] of Object.entries(params || {})) {
      if (value !== null && value !== undefined && value !== "") url.searchParams.set(name, value);
    }
    return url;
  }
  const experimentPath = (name, suffix = "") => "experiments/" + encodeURIComponent(name) + suffix;

  async function api(method, path, params) {
    const key = storedKey();
    if (!key) throw new ApiError(401, "no API key entered");
    let response;
    try {
      response = await fetch(apiUrl(path, params), { method, headers: { "x-api-key": key }, cache: "no-store" });
    } catch (error) {
      throw new ApiError(0, `cannot reach the API (${error.message})`);
    }
    const text = await response.text();
    let body = null;
    try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
    if (!response.ok) {
      const reason = body && typeof body.error === "string" ? body.error : response.statusText;
      throw new ApiError(response.status, reason);
    }
    return body;
  }

  function explain(error) {
    if (error.status === 401) return "API key missing (401): enter this deployment's API key (the x-api-key header) to see results.";
    if (error.status === 403) return "API key rejected (403): it does not match this deployment's key. Use \"Change key\" to enter the right one.";
    if (error.status === 0) return `Cannot reach the API: ${error.message}.`;
    return `Request failed (${error.status}): ${error.message}`;
  }
  function showMessage(text, kind = "error") {
    const box = $("message");
    box.textContent = text;
    box.className = kind;
    box.hidden = false;
  }
  const clearMessage = () => { $("message").hidden = true; $("message").textContent = ""; };
  function fail(error) {
    showMessage(explain(error));
    if (error.status === 401 || error.status === 403) openKeyPanel();
  }

  // ---------- API key ----------
  function storedKey() {
    try { return localStorage.getItem(KEY_STORAGE) || ""; } catch (_) { return ""; }
  }
  function renderKeySummary() {
    const key = storedKey();
    $("key-summary").textContent = key ? `Key ····${key.slice(-4)}` : "No API key";
  }
  function openKeyPanel() {
    $("key-panel").hidden = false;
    $("api-key").value = "";
    $("api-key").focus();
  }
  function saveKey(event) {
    event.preventDefault();
    const key = $("api-key").value.trim();
    if (!key) { $("api-key").focus(); return; }
    localStorage.setItem(KEY_STORAGE, key);
    $("key-panel").hidden = true;
    renderKeySummary();
    clearMessage();
    loadExperiments();
  }

  // ---------- experiment list ----------
  function experimentsFromReport(report) {
    // Gimel's shape: [{"meta": {...}}, {"experiment": name, "goals": [{"goal", "results": [{label, successes, trials}]}]}, ...]
    return (Array.isArray(report) ? report : [])
      .filter((item) => item && typeof item.experiment === "string")
      .map((item) => {
        const firstGoal = (item.goals || [])[0];
        const results = firstGoal ? firstGoal.results || [] : [];
        return {
          name: item.experiment, source: "alephbet", days: null, srm: null,
          variants: results.length,
          participants: firstGoal ? results.reduce((sum, result) => sum + (result.trials || 0), 0) : null,
        };
      });
  }

  function experimentsFromOverview(overview) {
    // GET /overview: [{"experiment", "source", "days_running", "participants", "variants": [{label, participants}], "srm"}]
    return (Array.isArray(overview) ? overview : [])
      .filter((item) => item && typeof item.experiment === "string")
      .map((item) => ({
        name: item.experiment, source: item.source === "segment" ? "segment" : "alephbet",
        days: isNumber(item.days_running) ? item.days_running : null,
        participants: isNumber(item.participants) ? item.participants : null,
        variants: Array.isArray(item.variants) ? item.variants.length : 0,
        srm: item.srm && typeof item.srm.mismatch === "boolean" ? item.srm : null,
        countedAsOf: typeof item.counted_as_of === "string" ? item.counted_as_of : null,
      }));
  }

  // On BigQuery the list's counts come from the catalog's daily snapshot (an entry says `counted_as_of`);
  // the note says so once, with the oldest watermark, so nobody reads them as live.
  function showListCounted(experiments) {
    const note = $("list-counted");
    const marks = (experiments || []).map((e) => e.countedAsOf).filter(Boolean).sort();
    note.hidden = marks.length === 0;
    note.textContent = marks.length
      ? `Participant counts in this list as of ${marks[0].replace("T", " ").replace(/:\d\d(\.\d+)?Z$/, " UTC")}; open an experiment for its latest results.`
      : "";
  }

  // /overview lists both sources; a server without it (404, or API Gateway's 403 for an unknown route)
  // still has Gimel's /experiments list of AlephBet experiments.
  async function listedExperiments(namespace) {
    try {
      return { experiments: experimentsFromOverview(await api("GET", "overview", { namespace })), bothSources: true, freshness: null };
    } catch (error) {
      if (![403, 404, 405].includes(error.status)) throw error;
    }
    const report = await api("GET", "experiments", { namespace });
    return { experiments: experimentsFromReport(report), bothSources: false,
             freshness: Array.isArray(report) && report[0] && report[0].meta ? report[0].meta.freshness : null };
  }

  async function loadExperiments() {
    const sequence = ++listSequence;
    let listed;
    try {
      listed = await listedExperiments(state.namespace);
    } catch (error) {
      if (sequence === listSequence) { renderExperimentList(null); showListCounted(null); renderNoSelection(); fail(error); }
      return;
    }
    if (sequence !== listSequence) return;
    clearMessage();
    if (listed.freshness) showFreshness(listed.freshness);
    renderExperimentList(listed.experiments, listed.bothSources);
    showListCounted(listed.experiments);
    if (state.experiment !== null) {
      const known = listed.experiments.find((e) => e.name === state.experiment && (!state.source || e.source === state.source));
      if (known && !state.source) { state.source = known.source; writeLocation(); }
      loadExperiment(state.experiment);
    } else {
      renderNoSelection();
    }
    loadListVerdicts(listed.experiments, sequence);
  }

  function renderExperimentList(experiments, bothSources = true) {
    // null: the list could not be read (the message says why), so it is neither shown nor called empty.
    const list = $("experiments");
    list.replaceChildren(...(experiments || []).map((experiment) => el("li", {},
      el("button", {
        type: "button", class: "experiment-link", "data-experiment": experiment.name, "data-source": experiment.source,
        "aria-current": isSelected(experiment) ? "true" : null,
        onclick: () => selectExperiment(experiment.name, experiment.source),
      }, el("span", { class: "experiment-title", text: experiment.name }),
      el("span", { class: "count" }, listFacts(experiment)),
      el("span", { class: "list-flags" },
        experiment.srm && experiment.srm.mismatch ? srmFlag() : null,
        el("span", { class: "list-verdict", "data-field": "list-verdict" }))))));
    const empty = $("experiments-empty");
    empty.hidden = !experiments || experiments.length > 0;
    empty.replaceChildren(bothSources
      ? `No experiments in namespace “${state.namespace}” yet. `
      : `No AlephBet experiments in namespace “${state.namespace}” yet (open a Segment experiment by its id below). `,
    el("a", { href: apiUrl("snippet", { namespace: state.namespace }).href, target: "_blank", rel: "noopener", text: "Get the AlephBet snippet" }),
    " to start tracking.");
  }

  function listFacts(experiment) {
    const facts = [SOURCE_NAMES[experiment.source]];
    if (isNumber(experiment.days)) facts.push(plural(Math.max(0, Math.round(experiment.days)), "day"));
    if (isNumber(experiment.participants)) facts.push(plural(experiment.participants, "participant"));
    else if (experiment.source === "alephbet" && experiment.days === null) facts.push("no goals yet");
    return facts.join(" · ");
  }

  const srmFlag = () => el("span", { class: "flag srm-flag", "data-field": "srm-flag", title: "Sample ratio mismatch: the split between variants is off" }, "⚠ SRM");

  function verdictChip(verdict) {
    const shown = VERDICTS[verdict];
    if (!shown) return null;
    return el("span", { class: `chip verdict-${verdict}`, "data-verdict": verdict },
      el("span", { class: "verdict-icon", "aria-hidden": "true", text: shown.icon }), " ", shown.word);
  }

  // Verdicts come from each experiment's results, fetched a few at a time once its entry is on screen
  // (each is a warehouse query: a long list scrolled past costs nothing).
  let listObserver = null;
  let listVerdictsLeft = () => {};   // asks the chips of entries left before their view showed one
  const listVerdicts = new Map();   // the answers already fetched, by request: the list redraws on every link change
  function loadListVerdicts(experiments, sequence) {
    if (listObserver) listObserver.disconnect();
    const queue = [];
    const skipped = new Set();
    let running = 0;
    const pump = () => {
      while (running < LIST_VERDICT_CONCURRENCY && queue.length && sequence === listSequence) {
        const experiment = queue.shift();
        // The open experiment's chip is its view's verdict (renderExperiment shows it): its results are
        // already being read, and a second read of the largest experiment would double the load's bill.
        if (isSelected(experiment)) { skipped.add(experiment); continue; }
        const params = { namespace: state.namespace, source: experiment.source, mode: state.mode, confidence: state.confidence,
          correction: state.correction };
        const key = JSON.stringify([experiment.name, params]);
        if (listVerdicts.has(key)) { showListVerdict(experiment, listVerdicts.get(key)); continue; }
        running += 1;
        api("GET", experimentPath(experiment.name, "/results"), params)
          .then((results) => {
            listVerdicts.set(key, { srm: results.srm, decision: results.decision, variants: results.variants });
            if (sequence === listSequence) showListVerdict(experiment, results);
          })
          .catch(() => { /* the list stays usable: this experiment just shows no verdict */ })
          .finally(() => { running -= 1; pump(); });
      }
    };
    const byButton = new Map();
    for (const experiment of experiments) {
      if (experiment.name === "." || experiment.name === "..") continue;
      const button = listButton(experiment);
      if (button) byButton.set(button, experiment);
    }
    listObserver = new IntersectionObserver((entries, observer) => {
      for (const entry of entries) {
        if (!entry.isIntersecting) continue;
        observer.unobserve(entry.target);
        queue.push(byButton.get(entry.target));
      }
      pump();
    });
    for (const button of byButton.keys()) listObserver.observe(button);
    // Left before its view arrived (or showed no chip): the entry's chip is read as any other's.
    listVerdictsLeft = () => {
      for (const experiment of [...skipped]) {
        if (isSelected(experiment)) continue;
        skipped.delete(experiment);
        const button = listButton(experiment);
        if (button && !button.querySelector(".chip")) queue.push(experiment);
      }
      pump();
    };
  }

  const listButton = (experiment) => [...document.querySelectorAll("#experiments button.experiment-link")].find((b) =>
    b.getAttribute("data-experiment") === experiment.name && b.getAttribute("data-source") === experiment.source);

  // The list says what the open view says about the open experiment (its guardrails and primary goal are
  // known only there), so the two never disagree.
  let viewed = null;
  function showListVerdict(experiment, answer) {
    const button = listButton(experiment);
    if (!button) return;
    const results = viewed && viewed.name === experiment.name && isSelected(experiment) ? viewed.results : answer;
    const flags = button.querySelector(".list-flags");
    if (!experiment.srm && results.srm && results.srm.mismatch && !flags.querySelector(".srm-flag")) flags.prepend(srmFlag());
    const verdict = verdictOf(results);
    const chip = verdict ? verdictChip(verdict.verdict) : null;
    button.querySelector(".list-verdict").replaceChildren(...(chip ? [chip] : []));
  }

  const isSelected = (experiment) => experiment.name === state.experiment && (!state.source || experiment.source === state.source);
  function markSelected() {
    for (const button of document.querySelectorAll("#experiments button")) {
      const shown = { name: button.getAttribute("data-experiment"), source: button.getAttribute("data-source") };
      if (isSelected(shown)) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  function selectExperiment(name, source) {
    if (name !== state.experiment || source !== state.source) {
      Object.assign(state, { ...DEFAULTS, confidence: state.confidence, mode: state.mode, correction: state.correction });
      state.dailyMetric = "participants";
    }
    state.experiment = name;
    state.source = source || "";
    markSelected();
    listVerdictsLeft();
    writeLocation();
    loadExperiment(name);
    // One column on small screens: the results are below the list, out of sight.
    if (window.matchMedia("(max-width: 800px)").matches) $("detail").scrollIntoView({ block: "start" });
  }

  // ---------- one experiment ----------
  function resultParams() {
    const segment = state.source === "segment";
    return { namespace: state.namespace, source: state.source, control: state.control, confidence: state.confidence,
      correction: state.correction, mode: state.mode, dimension: state.dimension, primary: state.primary,
      guardrails: state.guardrails.join(","), planned_participants: state.planned,
      goals: segment ? state.goals.join(",") : "", value: segment ? state.value : "" };
  }

  const orNull = (promise) => promise.catch(() => null);

  // `refresh`: compute both answers afresh instead of answering stored ones (the server keeps answers up to
  // DALET_RESULTS_MAX_AGE_MINUTES; without it the parameter is absent, so the request is the list chips' own).
  function fetchExperiment(name, refresh = false) {
    const again = { refresh: refresh ? "true" : "" };
    const dailyParams = { namespace: state.namespace, source: state.source, control: state.control, confidence: state.confidence,
      mode: state.mode, primary: state.primary, goals: state.source === "segment" ? state.goals.join(",") : "", ...again };
    // A server without /daily for this source (or at all) still shows the results.
    return Promise.all([api("GET", experimentPath(name, "/results"), { ...resultParams(), ...again }),
      orNull(api("GET", experimentPath(name, "/daily"), dailyParams))]);
  }

  async function loadExperiment(name, refresh = false) {
    const sequence = ++loadSequence;
    if (name === "." || name === "..") { renderUnreachable(name); return; }
    let results, daily;
    try {
      [results, daily] = await fetchExperiment(name, refresh);
    } catch (error) {
      // A link without a source, to a server that does not detect it: perhaps a Segment experiment.
      if (error.status !== 404 || state.source) { if (sequence === loadSequence) fail(error); return; }
      try {
        state.source = "segment";
        [results, daily] = await fetchExperiment(name, refresh);
      } catch (_) {
        state.source = "";
        if (sequence === loadSequence) fail(error);
        return;
      }
      if (sequence === loadSequence) { markSelected(); writeLocation(); }
    }
    if (sequence !== loadSequence) return;
    if (!state.source && (results.source === "segment" || results.source === "alephbet")) {
      state.source = results.source;
      markSelected();
      writeLocation();
    }
    const pickers = state.source === "segment" ? await segmentPickers(name) : null;
    if (sequence !== loadSequence) return;
    clearMessage();
    showFreshness(results.freshness);
    renderExperiment(results, daily, pickers);
  }

  // The goal and value pickers of a Segment experiment: events its people did after exposure, and their numeric properties.
  async function segmentPickers(name) {
    const params = { namespace: state.namespace, source: "segment" };
    const [goals, values] = await Promise.all([orNull(api("GET", experimentPath(name, "/goals"), params)),
      orNull(api("GET", experimentPath(name, "/values"), { ...params, goals: state.goals.join(",") }))]);
    return { goals: Array.isArray(goals) ? goals : null, values: Array.isArray(values) ? values : null };
  }

  function renderUnreachable(name) {
    // Tracked before /track refused these names: a URL path resolves "." and ".." away.
    $("detail").replaceChildren(el("div", { class: "panel" },
      el("div", { class: "title-row" },
        el("h2", { id: "experiment-name", text: name }),
        el("button", { type: "button", class: "danger", id: "delete-experiment", onclick: () => deleteExperiment(name) }, "Delete experiment…")),
      el("p", { class: "empty", text: `An experiment named “${name}” cannot be reported on: URL paths cannot carry “.” or “..” as a name. It can still be deleted.` })));
  }

  function renderNoSelection() {
    $("detail").replaceChildren(el("div", { class: "panel" },
      el("p", { class: "empty", id: "detail-empty", text: "Choose an experiment." })));
  }

  function colorOf(labels) {
    const colors = new Map(labels.map((label, index) => [label, COLORS[index % COLORS.length]]));
    return (label) => colors.get(label) || COLORS[COLORS.length - 1];
  }

  // Control first, then the other variants in label order (the API orders them so too; an older one may not).
  function ordered(variants, control) {
    return [...variants].sort((a, b) => (b.label === control) - (a.label === control) || (a.label < b.label ? -1 : a.label > b.label ? 1 : 0));
  }

  // The primary goal first, then the guardrails in the order given, then the rest as the API listed them.
  function orderedGoals(results) {
    const goals = results.goals || [];
    const primary = primaryGoal(results);
    const guardrails = guardrailsOf(results);
    const rank = (goal) => goal.goal === primary ? -1 : guardrails.includes(goal.goal) ? guardrails.indexOf(goal.goal) : guardrails.length;
    return goals.map((goal, index) => ({ goal, index })).sort((a, b) => rank(a.goal) - rank(b.goal) || a.index - b.index).map((x) => x.goal);
  }
  function primaryGoal(results) {
    const names = (results.goals || []).map((g) => g.goal);
    if (typeof results.primary_goal === "string" && names.includes(results.primary_goal)) return results.primary_goal;
    if (state.primary && names.includes(state.primary)) return state.primary;
    // The API's default: the goal with most successes.
    let best = null, most = -1;
    for (const goal of results.goals || []) {
      const successes = (goal.variants || []).reduce((sum, v) => sum + (v.successes || 0), 0);
      if (successes > most) { best = goal.goal; most = successes; }
    }
    return best;
  }
  const guardrailsOf = (results) => (Array.isArray(results.guardrails) ? results.guardrails : state.guardrails)
    .filter((name) => name !== primaryGoal(results));

  let lastView = null;
  function renderExperiment(results, daily, pickers) {
    lastView = { results, daily, pickers };
    viewed = { name: results.experiment, results };
    const listed = { name: results.experiment, source: state.source };
    if (listButton(listed)) showListVerdict(listed, results);
    const control = results.control;
    const variants = ordered(results.variants || [], control);
    const color = colorOf(variants.map((v) => v.label));
    const goals = orderedGoals(results);
    const primary = primaryGoal(results);
    // replaceChildren would show a null as the text "null": absent sections are left out.
    $("detail").replaceChildren(...[
      renderHeadline(results),
      renderSettings(results, variants, goals, primary, pickers),
      renderModeNote(results),
      renderParticipants(results, variants, color),
      ...(goals.length ? goals.map((goal) => renderGoal(goal, results, color, primary))
        : [el("div", { class: "panel" }, el("p", { class: "empty", text: "No goals tracked yet: only participation so far." }))]),
      daily && daily.uplift ? renderUplift(daily.uplift, results, color) : null,
      results.breakdown ? renderBreakdown(results.breakdown, goals, control, color) : null,
      daily && Array.isArray(daily.days) ? renderDaily(daily, results, color) : null,
      goals.length ? renderBayesian(goals, results, color) : null,
    ].filter((section) => section !== null && section !== undefined));
    fitChartText($("detail"));
  }

  // ---------- the verdict ----------
  // The API's decision; a server without one still warns of a broken split, the one verdict readable from its figures.
  function verdictOf(results) {
    const decision = results.decision;
    if (decision && VERDICTS[decision.verdict]) return decision;
    const srm = results.srm || {};
    if (srm.mismatch) {
      return { verdict: "dont_trust", sentence: `Don't trust these numbers yet: the split between variants is off (sample ratio mismatch, ${pIs(srm.p_value)}).`,
               reasons: [] };
    }
    const total = (results.variants || []).reduce((sum, v) => sum + (v.participants || 0), 0);
    if (!total) return { verdict: "no_data", sentence: "No data: nobody has taken part in this experiment yet.", reasons: [] };
    return null;
  }

  function renderVerdict(results) {
    const decision = verdictOf(results);
    if (!decision) {
      return el("p", { class: "note", id: "verdict-missing", text: "This server gives no verdict: read the primary goal below." });
    }
    const shown = VERDICTS[decision.verdict];
    const sentence = typeof decision.sentence === "string" && decision.sentence ? decision.sentence : shown.word + ".";
    const reasons = (Array.isArray(decision.reasons) ? decision.reasons : [])
      .filter((reason) => reason && typeof reason.text === "string" && reason.text && reason.text !== sentence);
    return el("div", { class: `verdict verdict-${decision.verdict}`, id: "verdict", "data-verdict": decision.verdict, role: "status" },
      el("span", { class: "verdict-icon", "aria-hidden": "true", text: shown.icon }),
      el("div", { class: "verdict-body" },
        el("strong", { class: "verdict-word", id: "verdict-word", text: shown.word }),
        el("p", { id: "verdict-sentence", text: sentence }),
        reasons.length ? el("details", { class: "reasons", id: "verdict-reasons" }, el("summary", { text: "Why" }),
          el("ul", {}, ...reasons.map((reason) => el("li", { "data-code": reason.code, text: reason.text })))) : null));
  }

  function renderHeadline(results) {
    const source = results.source || state.source;
    return el("div", { class: "panel", id: "headline" },
      el("div", { class: "title-row" },
        el("h2", { id: "experiment-name", text: results.experiment }),
        source ? el("span", { class: "tag", id: "experiment-source", text: SOURCE_NAMES[source] || source }) : null,
        source === "segment" ? null
          : el("button", { type: "button", class: "danger", id: "delete-experiment", onclick: () => deleteExperiment(results.experiment) }, "Delete experiment…")),
      renderAnswerAge(results),
      renderVerdict(results));
  }

  // A stored answer (`freshness.age_seconds` > 0; a fresh computation says 0): when it was computed, and a
  // Refresh that computes the results and the daily series again.
  function renderAnswerAge(results) {
    const freshness = results.freshness || {};
    const age = isNumber(freshness.age_seconds) ? freshness.age_seconds : 0;
    if (!(age > 0) || typeof freshness.answered_at !== "string") return null;
    const time = freshness.answered_at.slice(11, 16);
    const refresh = (event) => {
      event.target.disabled = true;
      event.target.textContent = "Refreshing…";
      loadExperiment(state.experiment, true);
    };
    return el("p", { class: "answer-age", id: "answer-age" },
      el("span", { id: "answer-age-text", text: `Results as of ${time} UTC (${age < 60 ? "less than 1 min" : age < 7200 ? Math.round(age / 60) + " min" : duration(age)} ago)` }),
      el("button", { type: "button", id: "refresh-results", onclick: refresh }, "Refresh"));
  }

  // ---------- settings: every one reloads and is kept in the link ----------
  function reloadWith(change) {
    return (event) => { change(event.target); writeLocation(); loadExperiment(state.experiment); };
  }

  function renderSettings(results, variants, goals, primary, pickers) {
    const select = (id, label, options, chosen, change) => el("label", {}, label + " ",
      el("select", { id, "aria-label": label, onchange: reloadWith(change) },
        ...options.map(([value, text]) => el("option", { value, selected: value === chosen ? "selected" : null, text }))));
    const guardrails = guardrailsOf(results);
    return el("div", { class: "panel", id: "settings" },
      el("div", { class: "controls" },
        goals.length ? select("primary", "Primary goal", goals.map((g) => [g.goal, g.goal]), primary,
          (target) => { state.primary = target.value; state.guardrails = state.guardrails.filter((g) => g !== target.value); }) : null,
        goals.length > 1 ? guardrailPicker(goals, primary, guardrails) : null,
        select("control", "Control", variants.map((v) => [v.label, v.label]), results.control, (target) => { state.control = target.value; }),
        select("confidence", "Confidence", CONFIDENCES.map((c) => [c, percent(Number(c), 0)]),
          CONFIDENCES.find((c) => Number(c) === Number(results.confidence)) || state.confidence, (target) => { state.confidence = target.value; }),
        select("mode", "Statistics", MODES, state.mode, (target) => { state.mode = target.value; }),
        select("correction", "Correction", CORRECTIONS, results.correction || state.correction, (target) => { state.correction = target.value; }),
        breakdownForm(),
        pickers ? segmentGoalPicker(results, pickers) : null,
        pickers && pickers.values ? select("value", "Value", [["", "none"], ...pickers.values.map((v) => [v.property, `${v.property} (${plural(v.users, "user")})`])],
          state.value, (target) => { state.value = target.value; }) : null),
      el("p", { class: "note", text: results.source === "segment" || state.source === "segment"
        ? `Segment experiment · namespace “${results.namespace}” · ${plural(results.multiple_exposures || 0, "user")} saw more than one variant`
        : `AlephBet experiment · namespace “${results.namespace}”` }));
  }

  function guardrailPicker(goals, primary, guardrails) {
    const boxes = goals.filter((g) => g.goal !== primary).map((g) => el("label", { class: "check" },
      el("input", { type: "checkbox", class: "guardrail", value: g.goal, checked: guardrails.includes(g.goal) ? "checked" : null,
        onchange: reloadWith(() => {
          state.guardrails = [...document.querySelectorAll("#guardrails input.guardrail:checked")].map((box) => box.value);
          state.primary = primary;
        }) }), " ", g.goal));
    return el("details", { class: "picker", id: "guardrails" },
      el("summary", { text: guardrails.length ? `Guardrails: ${guardrails.join(", ")}` : "Guardrails: none" }),
      el("p", { class: "note", text: "A variant significantly worse on a guardrail goal is a reason to stop it." }), ...boxes);
  }

  function segmentGoalPicker(results, pickers) {
    if (!pickers.goals) return null;
    const analysed = new Set((results.goals || []).map((g) => g.goal));
    const apply = () => {
      state.goals = [...document.querySelectorAll("#goal-picker input.goal-choice:checked")].map((box) => box.value);
      writeLocation();
      loadExperiment(state.experiment);
    };
    return el("details", { class: "picker", id: "goal-picker" },
      el("summary", { text: `Goals: ${plural(analysed.size, "goal")} analysed` }),
      el("p", { class: "note", text: "Events the exposed people did after exposure, most users first." }),
      ...pickers.goals.map((g) => el("label", { class: "check" },
        el("input", { type: "checkbox", class: "goal-choice", value: g.goal, checked: analysed.has(g.goal) ? "checked" : null }),
        " ", g.goal, el("small", { text: ` ${plural(g.users, "user")}` }))),
      el("button", { type: "button", id: "apply-goals", onclick: apply, text: "Apply" }));
  }

  function breakdownForm() {
    const input = el("input", { id: "dimension", list: "dimension-options", value: state.dimension, placeholder: "none",
      autocomplete: "off", spellcheck: "false", "aria-label": "Break down by" });
    return el("form", { id: "dimension-form", onsubmit: (event) => {
      event.preventDefault();
      state.dimension = input.value.trim();
      writeLocation();
      loadExperiment(state.experiment);
    } }, el("label", { for: "dimension" }, "Break down by "), input, el("button", { type: "submit", text: "Apply" }));
  }

  // ---------- figures ----------
  // The figures of the chosen mode for one comparison (a goal's variant, or a value row).
  function decisionOf(comparison) {
    if (state.mode === "sequential") return comparison.sequential || {};
    return { p_value: comparison.p_value, p_value_adjusted: comparison.p_value_adjusted,
             relative_ci: comparison.uplift ? comparison.uplift.relative_ci : comparison.relative_ci,
             absolute_ci: comparison.uplift ? comparison.uplift.absolute_ci : comparison.ci };
  }

  // Significant means the adjusted p-value (across every comparison of the experiment) is below 1 - confidence.
  function verdictClass(variant, alpha) {
    const decision = decisionOf(variant);
    if (!isNumber(decision.p_value_adjusted) || decision.p_value_adjusted >= alpha || !variant.uplift) return null;
    return variant.uplift.absolute > 0 ? "better" : variant.uplift.absolute < 0 ? "worse" : null;
  }
  // Never colour only: the word and arrow say it too.
  const SIGNIFICANCE_WORDS = { better: "▲ Better", worse: "▼ Worse" };
  const significanceText = (mark) => SIGNIFICANCE_WORDS[mark] || "No clear difference";

  function renderModeNote(results) {
    const correction = CORRECTION_NAMES[results.correction] || "adjusted";
    const marking = results.correction === "none"
      ? "“▲ Better” or “▼ Worse” marks a p-value below 1 − confidence, with no correction for the number of comparisons."
      : `“▲ Better” or “▼ Worse” marks a ${correction}-adjusted p-value below 1 − confidence, adjusted across every variant, goal and value comparison of this experiment.`;
    const text = state.mode === "sequential"
      ? "Showing sequential (always-valid) figures: their p-values and intervals stay valid however often you look, " +
        "so you may act as soon as a result is marked. " + marking
      : "Showing fixed-horizon figures: valid only when read once, at a sample size chosen in advance. " +
        "Checking every day and stopping at the first significant result makes false positives several times likelier. " + marking;
    return el("div", { class: "panel" }, el("p", { id: "mode-note", "data-mode": state.mode, text }));
  }

  // One child, so a card's grid (small screens) keeps swatch, name and tag together.
  const variantCell = (label, control, color) => el("td", { "data-label": "Variant" }, el("span", { class: "variant-name" },
    el("span", { class: "swatch", style: `background:${color(label)}` }), label,
    label === control ? el("span", { class: "control-tag", text: "control" }) : null));

  function renderParticipants(results, variants, color) {
    const total = variants.reduce((sum, v) => sum + (v.participants || 0), 0);
    const srm = results.srm || {};
    const unexpected = Array.isArray(srm.unexpected_variants) ? srm.unexpected_variants : [];
    const rows = variants.map((v) => el("tr", { "data-variant": v.label },
      variantCell(v.label, results.control, color),
      el("td", { "data-label": "Participants", "data-field": "participants", text: integer(v.participants) }),
      el("td", { "data-label": "Share", "data-field": "share", text: total ? percent(v.participants / total, 1) : "—" })));
    return el("div", { class: "panel", id: "participants" },
      el("h2", { text: "Participants" }),
      el("table", { class: "reflow" },
        el("thead", {}, el("tr", {}, el("th", { text: "Variant" }), el("th", { text: "Participants" }), el("th", { text: "Share" }))),
        el("tbody", {}, ...rows)),
      srm.mismatch
        ? el("div", { class: "warning", id: "srm-warning", role: "status" },
            el("strong", { text: "⚠ Sample ratio mismatch. " }),
            `Participants are not split between variants as expected (chi-square ${pIs(srm.p_value)}). ` +
            "Assignment or tracking is probably broken; don't trust these results until it is fixed.",
            unexpected.length
              ? el("span", { id: "srm-unexpected", text: ` Goal events arrived for ${unexpected.length === 1 ? "a variant" : "variants"} nobody was assigned to: ${unexpected.join(", ")}.` })
              : null)
        : el("p", { class: "ok-note", id: "srm-ok", text: isNumber(srm.p_value)
            ? `Split between variants looks as expected (sample ratio check ${pIs(srm.p_value)}).` : "" }));
  }

  function renderGoal(goal, results, color, primary) {
    const alpha = 1 - Number(results.confidence);
    const confidenceLabel = percent(Number(results.confidence), 0);
    const fixed = state.mode === "fixed";
    const role = goal.goal === primary ? "primary" : guardrailsOf(results).includes(goal.goal) ? "guardrail" : null;
    const upliftHeading = `Uplift vs control (${confidenceLabel} ${fixed ? "CI" : "sequential CI"})`;
    const rows = ordered(goal.variants || [], results.control).map((v) => {
      const isControl = v.label === results.control;
      const mark = isControl ? null : verdictClass(v, alpha);
      const decision = isControl ? {} : decisionOf(v);
      return el("tr", { "data-variant": v.label },
        variantCell(v.label, results.control, color),
        el("td", { "data-label": "Conversions", "data-field": "successes", text: `${integer(v.successes)} / ${integer(v.trials)}` }),
        el("td", { "data-label": fixed ? `Rate (${confidenceLabel} CI)` : "Rate" }, el("span", { "data-field": "rate", text: percent(v.rate) }),
          fixed ? el("small", { "data-field": "rate-ci", text: interval(v.rate_ci, (x) => percent(x)) }) : null),
        el("td", { "data-label": upliftHeading, class: mark },
          el("span", { "data-field": "uplift", text: isControl || !v.uplift ? "—" : signedPercent(v.uplift.relative) }),
          el("small", { "data-field": "uplift-ci", text: isControl || !v.uplift ? "" : interval(decision.relative_ci, (x) => signedPercent(x)) })),
        el("td", { "data-label": "p-value (adjusted)", class: mark },
          el("span", { "data-field": "p-value", text: isControl ? "—" : pValue(decision.p_value_adjusted) })),
        el("td", { "data-label": "Verdict", class: mark },
          el("span", { "data-field": "significance", text: isControl ? "baseline" : significanceText(mark) })));
    });
    return el("div", { class: "panel goal", "data-goal": goal.goal, "data-role": role },
      el("h3", {}, "Goal: ", el("span", { class: "goal-name", text: goal.goal }),
        role ? el("span", { class: `tag role-${role}`, text: role }) : null),
      el("div", { class: "goal-body" },
        el("table", { class: "goal-table reflow" },
          el("thead", {}, el("tr", {},
            el("th", { text: "Variant" }), el("th", { text: "Conversions" }),
            el("th", { text: fixed ? `Rate (${confidenceLabel} CI)` : "Rate" }), el("th", { text: upliftHeading }),
            el("th", { text: "p-value (adjusted)" }), el("th", { text: "Verdict" }))),
          el("tbody", {}, ...rows)),
        rateChart(ordered(goal.variants || [], results.control), color, fixed ? confidenceLabel : null)),
      renderValue(goal.value, results.control));
  }

  function renderValue(value, control) {
    // Goals whose events carry numeric values: per variant count, sum and mean per participant,
    // and for each non-control variant the difference in mean vs control (Welch, or its confidence sequence).
    const perVariant = value && Array.isArray(value.variants) ? ordered(value.variants, control) : null;
    if (!perVariant || !perVariant.length) return null;
    return el("div", { class: "value-table" }, el("table", { class: "reflow" },
      el("thead", {}, el("tr", {}, el("th", { text: "Value" }), el("th", { text: "Participants with a value" }), el("th", { text: "Sum" }),
        el("th", { text: "Mean per participant" }), el("th", { text: "Difference vs control" }), el("th", { text: "p-value (adjusted)" }))),
      el("tbody", {}, ...perVariant.map((v) => {
        const compared = "p_value" in v;
        const decision = compared ? decisionOf(v) : {};
        return el("tr", { "data-variant": v.label },
          el("td", { "data-label": "Value", text: v.label }),
          el("td", { "data-label": "With a value", "data-field": "value-count", text: integer(v.count) }),
          el("td", { "data-label": "Sum", "data-field": "value-sum", text: decimal(v.sum) }),
          el("td", { "data-label": "Mean per participant", "data-field": "value-mean", text: decimal(v.mean) }),
          el("td", { "data-label": "Difference vs control" }, el("span", { "data-field": "value-difference", text: compared ? signedDecimal(v.difference) : "—" }),
            el("small", { "data-field": "value-difference-ci", text: interval(decision.absolute_ci, signedDecimal) })),
          el("td", { "data-label": "p-value (adjusted)" }, el("span", { "data-field": "value-p-value", text: compared ? pValue(decision.p_value_adjusted) : "—" })));
      }))));
  }

  // Fixed-horizon Bayesian chances: kept out of the main story, in a view that says what they are.
  function renderBayesian(goals, results, color) {
    return el("details", { class: "panel", id: "bayesian" },
      el("summary", { text: "Bayesian view (fixed horizon, not corrected for peeking)" }),
      el("p", { class: "note", text: "Chances from a Beta posterior per variant, read as if the data were final. They ignore how often " +
        "you have looked and how many goals you compare, so they look surer than the figures above: decide on the verdict, not on these." }),
      ...goals.map((goal) => {
        const best = goal.chance_to_be_best || {};
        return el("div", { class: "bayes-goal", "data-goal": goal.goal },
          el("h3", {}, "Goal: ", el("span", { class: "goal-name", text: goal.goal })),
          el("table", { class: "bayes-table reflow" },
            el("thead", {}, el("tr", {}, el("th", { text: "Variant" }), el("th", { text: "Chance to beat control" }), el("th", { text: "Chance to be best" }))),
            el("tbody", {}, ...ordered(goal.variants || [], results.control).map((v) => el("tr", { "data-variant": v.label },
              variantCell(v.label, results.control, color),
              el("td", { "data-label": "Chance to beat control", "data-field": "chance-to-beat-control",
                text: v.label === results.control ? "—" : percent(v.chance_to_beat_control, 1) }),
              el("td", { "data-label": "Chance to be best", "data-field": "chance-to-be-best", text: percent(best[v.label], 1) }))))));
      }));
  }

  function renderBreakdown(breakdown, goals, control, color) {
    // One row per (segment, variant): participants and, per goal, rate with uplift, interval and p vs control in that segment.
    const alpha = 1 - Number(breakdown.confidence || state.confidence);
    const rows = [];
    for (const segment of breakdown.segments || []) {
      const name = segment.other ? "(other)" : segment.value === null ? "(none)" : segment.value;
      const goalOf = new Map((segment.goals || []).map((goal) => [goal.goal, goal]));
      for (const variant of ordered(segment.variants || [], control)) {
        const isControl = variant.label === control;
        rows.push(el("tr", { "data-segment": name, "data-variant": variant.label },
          el("td", { "data-label": breakdown.dimension, "data-field": "segment", text: name }),
          variantCell(variant.label, control, color),
          el("td", { "data-label": "Participants", "data-field": "participants", text: integer(variant.participants) }),
          ...goals.map((goal) => {
            const arm = ((goalOf.get(goal.goal) || {}).variants || []).find((v) => v.label === variant.label) || {};
            const mark = isControl ? null : verdictClass(arm, alpha);
            const decision = isControl ? {} : decisionOf(arm);
            return el("td", { "data-goal": goal.goal, "data-label": goal.goal, class: mark },
              el("span", { "data-field": "rate", text: percent(arm.rate) }),
              el("small", { "data-field": "successes", text: `${integer(arm.successes)} / ${integer(arm.trials)}` }),
              isControl ? null : el("small", { "data-field": "segment-uplift", text: arm.uplift && isNumber(arm.uplift.relative)
                ? `${signedPercent(arm.uplift.relative)} (${interval(decision.relative_ci, (x) => signedPercent(x)) || "no interval"})` : "uplift —" }),
              isControl ? null : el("small", { "data-field": "segment-p", text: `${pIs(decision.p_value_adjusted)} · ${significanceText(mark)}` }));
          })));
      }
    }
    return el("div", { class: "panel", id: "breakdown" },
      el("h2", { text: `Breakdown by ${breakdown.dimension}` }),
      el("table", { class: "reflow" },
        el("thead", {}, el("tr", {}, el("th", { text: "Segment" }), el("th", { text: "Variant" }), el("th", { text: "Participants" }),
          ...goals.map((goal) => el("th", { text: `${goal.goal}: rate, uplift (interval), adjusted p` })))),
        el("tbody", {}, ...rows)),
      el("p", { class: "note", text: `Per segment: uplift vs control with its ${state.mode === "fixed" ? "fixed-horizon" : "sequential"} ` +
        "interval and the API's adjusted p-value. The 20 values with the most participants; the rest are summed as (other)." }));
  }

  // ---------- charts (inline SVG) ----------
  function niceMax(value) {
    if (!(value > 0)) return 1;
    const magnitude = Math.pow(10, Math.floor(Math.log10(value)));
    const step = [1, 2, 2.5, 5, 10].find((s) => s * magnitude >= value);
    return step * magnitude;
  }

  function rateChart(variants, color, confidenceLabel) {
    const width = 300, height = 190, left = 44, right = 8, top = 10, bottom = 34;
    const plotWidth = width - left - right, plotHeight = height - top - bottom;
    // Intervals (whiskers) only with fixed-horizon figures: per-arm intervals are not sequential ones.
    const whiskers = confidenceLabel !== null;
    const highest = Math.max(0, ...variants.flatMap((v) => [v.rate, ...(whiskers && Array.isArray(v.rate_ci) ? v.rate_ci : [])]).filter(isNumber));
    const maximum = Math.min(1, niceMax(highest)) || 1;
    const y = (rate) => top + plotHeight - (Math.max(0, Math.min(rate, maximum)) / maximum) * plotHeight;
    const slot = plotWidth / Math.max(1, variants.length);
    const barWidth = Math.min(48, slot * 0.6);
    const chart = svg("svg", { class: "rate-chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      "aria-label": whiskers ? `Conversion rate per variant with ${confidenceLabel} confidence intervals` : "Conversion rate per variant" });
    for (const fraction of [0, 0.5, 1]) {
      const value = maximum * fraction;
      chart.append(svg("line", { class: "axis", x1: left, x2: width - right, y1: y(value), y2: y(value) }),
        svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end", text: axisPercent(value) }));
    }
    variants.forEach((v, index) => {
      const center = left + slot * index + slot / 2;
      const rate = isNumber(v.rate) ? v.rate : 0;
      const bar = svg("rect", { class: "bar", "data-variant": v.label, "data-rate": isNumber(v.rate) ? v.rate : "",
        x: center - barWidth / 2, y: y(rate), width: barWidth, height: Math.max(0, y(0) - y(rate)), rx: 2,
        fill: color(v.label), "fill-opacity": 0.85 },
        svg("title", { text: `${v.label}: ${percent(v.rate)}` + (whiskers ? ` (${interval(v.rate_ci, (x) => percent(x))})` : "") }));
      chart.append(bar);
      if (whiskers && Array.isArray(v.rate_ci) && v.rate_ci.every(isNumber)) {
        const [low, high] = v.rate_ci.map(y);
        const cap = barWidth / 4;
        chart.append(svg("g", { class: "whiskers", "data-variant": v.label },
          svg("line", { class: "whisker", x1: center, x2: center, y1: low, y2: high }),
          svg("line", { class: "whisker", x1: center - cap, x2: center + cap, y1: low, y2: low }),
          svg("line", { class: "whisker", x1: center - cap, x2: center + cap, y1: high, y2: high })));
      }
      chart.append(svg("text", { x: center, y: height - bottom + 16, "text-anchor": "middle", text: shorten(v.label, 14) }));
    });
    return chart;
  }
  const shorten = (text, length) => text.length > length ? text.slice(0, length - 1) + "…" : text;

  function dailySeries(daily) {
    // {"days": [{"day": "YYYY-MM-DD", "variants": [{"label", "participants", "successes": {goal: n}}]}]}, cumulative.
    const byVariant = new Map();
    for (const day of (daily && daily.days) || []) {
      for (const variant of day.variants || []) {
        if (!byVariant.has(variant.label)) byVariant.set(variant.label, []);
        byVariant.get(variant.label).push({ day: day.day, participants: variant.participants || 0, goals: variant.successes || {} });
      }
    }
    return byVariant;
  }

  function renderDaily(daily, results, color) {
    const series = dailySeries(daily);
    const goals = orderedGoals(results).map((g) => g.goal);
    if (state.dailyMetric !== "participants" && !goals.includes(state.dailyMetric)) state.dailyMetric = "participants";
    const metric = el("select", { id: "daily-metric", "aria-label": "Daily chart metric",
      onchange: (event) => { state.dailyMetric = event.target.value; $("daily").replaceWith(renderDaily(daily, results, color)); fitChartText($("daily")); } },
      el("option", { value: "participants", text: "Participants (cumulative)" }),
      ...goals.map((goal) => el("option", { value: goal, selected: goal === state.dailyMetric ? "selected" : null, text: `${goal}: conversion rate (cumulative)` })));
    const value = (point) => state.dailyMetric === "participants" ? point.participants
      : point.participants ? (point.goals[state.dailyMetric] || 0) / point.participants : null;
    return el("div", { class: "panel", id: "daily" },
      el("div", { class: "chart-head" }, el("h2", { text: "Cumulative, day by day" }), metric),
      series.size ? dailyChart(series, value, color, state.dailyMetric !== "participants")
        : el("p", { class: "empty", text: "No daily data yet." }),
      legend([...series.keys()], color));
  }

  const legend = (labels, color) => el("div", { class: "legend" }, ...labels.map((label) =>
    el("span", {}, el("span", { class: "swatch", style: `background:${color(label)}` }), label)));

  const dayTick = (days) => (index) => ({ text: days[index].slice(5),
    anchor: days.length === 1 ? "middle" : index === 0 ? "start" : index === days.length - 1 ? "end" : "middle" });

  function dailyChart(series, value, color, asRate) {
    const days = [...new Set([...series.values()].flat().map((p) => p.day))].sort();
    const values = [...series.values()].flat().map(value).filter(isNumber);
    const format = (v) => asRate ? axisPercent(v) : integer(v);
    return lineChart({
      id: "daily-chart", description: "Cumulative values per day and variant", count: days.length,
      maximum: asRate ? Math.min(1, niceMax(Math.max(0, ...values))) || 1 : niceMax(Math.max(0, ...values)),
      gridlines: [0, 0.25, 0.5, 0.75, 1], format, labelLast: true, tick: dayTick(days),
      lines: [...series].map(([label, points]) => ({
        attributes: { class: "daily-line", "data-variant": label, fill: "none", stroke: color(label), "stroke-width": 2 },
        points: points.filter((p) => isNumber(value(p))).map((p) => ({ index: days.indexOf(p.day), value: value(p), day: p.day })),
        marker: (point, cx, cy) => svg("circle", { class: "daily-point", "data-variant": label, cx, cy, r: 3, fill: color(label) },
          svg("title", { text: `${label} · ${point.day}: ${format(point.value)}` })),
      })),
    });
  }

  // The primary goal's cumulative uplift vs control, day by day, with its interval as a band (from /daily's `uplift`).
  function renderUplift(uplift, results, color) {
    const days = (uplift.days || []).map((d) => d.day);
    const byVariant = new Map();
    (uplift.days || []).forEach((day, index) => {
      for (const v of day.variants || []) {
        if (!byVariant.has(v.label)) byVariant.set(v.label, []);
        if (isNumber(v.relative)) {
          const ci = Array.isArray(v.relative_ci) && v.relative_ci.every(isNumber) ? v.relative_ci : null;
          byVariant.get(v.label).push({ index, day: day.day, value: v.relative, ci });
        }
      }
    });
    const values = [0, ...[...byVariant.values()].flat().flatMap((p) => [p.value, ...(p.ci || [])])];
    // Gridlines at a round step that includes 0.
    const lowest = Math.min(...values), highest = Math.max(...values);
    const step = niceMax((highest - lowest) / 4 || 0.01);
    const minimum = Math.floor(lowest / step) * step, maximum = Math.max(minimum + step, Math.ceil(highest / step) * step);
    const steps = Math.round((maximum - minimum) / step);
    const modeName = state.mode === "fixed" ? "fixed-horizon" : "sequential";
    const chart = !days.length || ![...byVariant.values()].some((points) => points.length)
      ? el("p", { class: "empty", text: "No uplift to chart yet." })
      : lineChart({
        id: "uplift-chart", description: `Cumulative uplift of ${uplift.goal} vs control with ${modeName} intervals`,
        count: days.length, minimum, maximum, gridlines: Array.from({ length: steps + 1 }, (_, index) => index / steps),
        format: (v) => signedPercent(Math.round(v / step) * step, step < 0.01 ? 1 : 0), labelLast: true, tick: dayTick(days), zero: true,
        bands: [...byVariant].map(([label, points]) => ({
          attributes: { class: "uplift-band", "data-variant": label, fill: color(label), "fill-opacity": 0.15, stroke: "none" },
          points: points.filter((p) => p.ci).map((p) => ({ index: p.index, low: p.ci[0], high: p.ci[1] })),
        })),
        lines: [...byVariant].map(([label, points]) => ({
          attributes: { class: "uplift-line", "data-variant": label, fill: "none", stroke: color(label), "stroke-width": 2 },
          points,
          marker: (point, cx, cy) => svg("circle", { class: "uplift-point", "data-variant": label, cx, cy, r: 3, fill: color(label) },
            svg("title", { text: `${label} · ${point.day}: ${signedPercent(point.value)}` + (point.ci ? ` (${interval(point.ci, (x) => signedPercent(x))})` : "") })),
        })),
      });
    return el("div", { class: "panel", id: "uplift" },
      el("h2", {}, "Uplift over time: ", el("span", { class: "goal-name", text: uplift.goal || "" })),
      chart,
      legend([...byVariant.keys()], color),
      el("p", { class: "note", text: `Each variant's cumulative uplift vs ${results.control} as of each day, with its ` +
        `${percent(Number(results.confidence), 0)} ${modeName} interval (the band). A band clear of 0 % is a difference.` }));
  }

  // A chart's width in its own units: about the width its panel draws it at (so labels are spaced for it).
  function chartWidth(container) {
    const panel = container ? container.getBoundingClientRect().width - 34 : 0;
    return Math.round(Math.max(280, Math.min(1200, panel > 0 ? panel : 760)));
  }

  // Chart text scaled to be drawn CHART_TEXT_PX CSS pixels high however wide the chart is shown.
  const CHART_TEXT_PX = 12;
  function fitChartText(root) {
    for (const chart of (root || document).querySelectorAll("svg[viewBox]")) {
      const units = chart.viewBox.baseVal.width, shown = chart.getBoundingClientRect().width;
      if (!units || !shown) continue;
      chart.style.setProperty("--chart-font", `${((CHART_TEXT_PX * units) / shown).toFixed(2)}px`);
    }
  }

  // One line chart for the daily, uplift and events views: `count` evenly spaced positions, gridlines at
  // `gridlines` (fractions from `minimum` to `maximum`), a few x labels (`tick`), per band a filled area
  // between its points' low and high, and per line a polyline of its points ({index, value}) with an
  // optional marker drawn at each point.
  function lineChart({ id, description, count, minimum = 0, maximum, gridlines, format, tick, labelLast, lines, bands = [],
                      zero = false, container = $("detail") }) {
    const width = chartWidth(container), height = 240, left = 56, right = 14, top = 10, bottom = 28;
    const plotWidth = width - left - right, plotHeight = height - top - bottom;
    const x = (index) => left + (count === 1 ? plotWidth / 2 : (index / (count - 1)) * plotWidth);
    const y = (v) => top + plotHeight - ((v - minimum) / (maximum - minimum)) * plotHeight;
    const chart = svg("svg", { id, class: "line-chart", viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
      "aria-label": description, preserveAspectRatio: "xMidYMid meet" });
    for (const fraction of gridlines) {
      const value = minimum + (maximum - minimum) * fraction;
      chart.append(svg("line", { class: "axis", x1: left, x2: width - right, y1: y(value), y2: y(value) }),
        svg("text", { x: left - 6, y: y(value) + 4, "text-anchor": "end", text: format(value) }));
    }
    if (zero && minimum < 0 && maximum > 0) chart.append(svg("line", { class: "zero", x1: left, x2: width - right, y1: y(0), y2: y(0) }));
    // About one label per 90 units, so neighbours never overlap.
    const labelEvery = Math.max(1, Math.ceil(count / Math.max(2, Math.floor(plotWidth / 90))));
    for (let index = 0; index < count; index++) {
      const last = index === count - 1;
      const crowdsLast = labelLast && !last && count - 1 - index < labelEvery / 2;
      if ((index % labelEvery === 0 && !crowdsLast) || (labelLast && last)) {
        const { text, anchor } = tick(index);
        chart.append(svg("text", { x: x(index), y: height - 8, "text-anchor": anchor, text }));
      }
    }
    for (const band of bands) {
      if (!band.points.length) continue;
      if (band.points.length === 1) {   // one day: the interval as a bar, an area would have no width
        const [p] = band.points;
        chart.append(svg("rect", { ...band.attributes, x: x(p.index) - 5, width: 10, y: y(p.high), height: Math.max(1, y(p.low) - y(p.high)), rx: 2 }));
        continue;
      }
      const upper = band.points.map((p) => `${x(p.index).toFixed(1)},${y(p.high).toFixed(1)}`);
      const lower = band.points.slice().reverse().map((p) => `${x(p.index).toFixed(1)},${y(p.low).toFixed(1)}`);
      chart.append(svg("polygon", { ...band.attributes, points: [...upper, ...lower].join(" ") }));
    }
    for (const line of lines) {
      chart.append(svg("polyline", { ...line.attributes,
        points: line.points.map((p) => `${x(p.index).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ") }, ...(line.children || [])));
      if (line.marker) for (const p of line.points) chart.append(line.marker(p, x(p.index), y(p.value)));
    }
    return chart;
  }

  // ---------- events view ----------
  const EVENTS_HOURLY_DAYS = 2;   // the hourly view opens on the last 48 hours (yesterday and today, UTC)
  const isoDay = (date) => date.toISOString().slice(0, 10);

  function showView(view) {
    state.view = view;
    $("experiments-view").hidden = view !== "experiments";
    $("events-view").hidden = view !== "events";
    $("view-experiments").setAttribute("aria-pressed", String(view === "experiments"));
    $("view-events").setAttribute("aria-pressed", String(view === "events"));
    if (view === "events") loadEvents();
  }

  function defaultEventsWindow() {
    // Hourly: the last 48 hours; daily: the API's default window.
    if ($("events-interval").value === "hour") {
      const today = new Date();
      $("events-from").value = isoDay(new Date(today.getTime() - (EVENTS_HOURLY_DAYS - 1) * 86400000));
      $("events-to").value = isoDay(today);
    } else {
      $("events-from").value = "";
      $("events-to").value = "";
    }
  }

  async function loadEvents(event) {
    if (event) event.preventDefault();
    const sequence = ++eventsSequence;
    const window_ = { from: $("events-from").value, to: $("events-to").value };
    const params = { namespace: state.namespace, ...window_, event: $("events-event").value,
      interval: $("events-interval").value, group_by: $("events-group").value.trim() };
    let names, series;
    try {
      [names, series] = await Promise.all([
        api("GET", "events/names", { namespace: state.namespace, ...window_ }), api("GET", "events", params)]);
    } catch (error) {
      if (sequence === eventsSequence) fail(error);
      return;
    }
    if (sequence !== eventsSequence) return;
    clearMessage();
    renderEventNames(names.names || [], params.event);
    renderEvents(series);
  }

  // Page views (page calls, counted by page name or path) are listed apart from track events when the API says which are which.
  const isPage = (item) => item.kind === "page" || item.type === "page" || item.source === "page";
  function renderEventNames(names, chosen) {
    const option = (item) => el("option", { value: item.name, selected: item.name === chosen ? "selected" : null,
      text: isNumber(item.events) ? `${visibleName(item.name)} (${item.events})` : visibleName(item.name) });
    const pages = names.filter(isPage), tracked = names.filter((item) => !isPage(item));
    const unlisted = chosen && !names.some((item) => item.name === chosen) ? [option({ name: chosen })] : [];
    $("events-event").replaceChildren(el("option", { value: "", text: "All events" }), ...unlisted,
      ...(pages.length
        ? [el("optgroup", { label: "Events" }, ...tracked.map(option)), el("optgroup", { label: "Page views" }, ...pages.map(option))]
        : tracked.map(option)));
  }

  function renderEvents(series) {
    const metric = $("events-metric").value;
    const lines = series.series || [];
    // Without group_by there is one series, of every event; with it, null is the events without the property.
    const groupName = (line) => !series.group_by ? "All" : line.other ? "(other)" : line.group === null ? "(none)" : line.group;
    const color = colorOf(lines.map(groupName));
    const sum = (numbers) => (numbers || []).reduce((total, n) => total + n, 0);
    // Unique users over the whole window: only the API can count them (people active in several hours count once).
    const windowUsers = (line) => isNumber(line.unique_users) ? line.unique_users
      : !series.group_by && isNumber(series.unique_users) ? series.unique_users : null;
    $("events-result").replaceChildren(el("div", { class: "panel", id: "events-panel" },
      el("h2", { text: `${series.event || "All events"} · ${metric === "users" ? "unique users" : "events"} per ${series.interval}` +
        (series.group_by ? ` by ${series.group_by}` : "") }),
      el("p", { class: "note", id: "events-window", text: `From ${series.from} to ${series.to} (UTC)` }),
      lines.length ? eventsChart(series, metric, groupName, color)
        : el("p", { class: "empty", id: "events-empty", text: `No events from ${series.from} to ${series.to}.` }),
      legend(lines.map(groupName), color),
      el("table", { id: "events-table", class: "reflow" },
        el("thead", {}, el("tr", {}, el("th", { text: series.group_by ? "Group" : "Series" }),
          el("th", { text: "Events" }), el("th", { text: "Unique users over the window" }))),
        el("tbody", {}, ...lines.map((line) => el("tr", { "data-group": groupName(line) },
          el("td", { "data-label": series.group_by ? "Group" : "Series", text: groupName(line) }),
          el("td", { "data-label": "Events", "data-field": "events-total", text: integer(sum(line.events)) }),
          el("td", { "data-label": "Unique users over the window", "data-field": "users-window",
            text: windowUsers(line) === null ? "—" : integer(windowUsers(line)) })))))));
    fitChartText($("events-result"));
  }

  function eventsChart(series, metric, groupName, color) {
    const intervals = series.intervals || [], lines = series.series || [];
    return lineChart({
      id: "events-chart", description: `${metric} per interval`, count: intervals.length, container: $("events-view"),
      maximum: niceMax(Math.max(0, ...lines.flatMap((line) => line[metric] || []))),
      gridlines: [0, 0.5, 1], format: integer, labelLast: false,
      // Centred under their point (the first one's half fits in the axis gutter), so neighbours never overlap.
      tick: (index) => ({ anchor: "middle", text: series.interval === "hour"
        ? `${intervals[index].slice(5, 10)} ${intervals[index].slice(11, 16)}` : intervals[index].slice(5, 10) }),
      lines: lines.map((line) => {
        const values = line[metric] || [];
        return {
          attributes: { class: "events-line", "data-group": groupName(line), stroke: color(groupName(line)), "data-values": values.join(",") },
          points: values.map((value, index) => ({ index, value })),
          children: [svg("title", { text: `${groupName(line)}: ${values.reduce((sum, n) => sum + n, 0)} in all` })],
        };
      }),
    });
  }

  // ---------- delete ----------
  async function deleteExperiment(name) {
    const shown = visibleName(name), namespace = visibleName(state.namespace);
    const disguised = shown !== name || namespace !== state.namespace;
    const question = `Delete experiment “${shown}” in namespace “${namespace}”?\n\n` +
      (disguised ? "The name holds invisible or direction-changing characters, shown above as \\uXXXX.\n\n" : "") +
      "Its results disappear from every report, and this cannot be undone.";
    if (!window.confirm(question)) return;
    try {
      // Gimel's route takes the name as a query parameter: no path can resolve it elsewhere.
      await api("DELETE", "delete", { namespace: state.namespace, experiment: name });
    } catch (error) {
      fail(error);
      return;
    }
    state.experiment = null;
    writeLocation();
    await loadExperiments();
    showMessage(`Deleted experiment “${visibleName(name)}”.`, "info");
  }

  // ---------- namespace and location ----------
  // The fragment holds the whole view: namespace, experiment, source, mode, confidence, correction, primary goal,
  // guardrails, breakdown, control, Segment goals and value, and planned_participants.
  const FRAGMENT = [["source", "source"], ["mode", "mode"], ["confidence", "confidence"], ["correction", "correction"],
    ["primary", "primary"], ["guardrails", "guardrails"], ["breakdown", "dimension"], ["control", "control"],
    ["goals", "goals"], ["value", "value"], ["planned_participants", "planned"]];
  const LISTS = new Set(["guardrails", "goals"]);

  function readLocation() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    let saved = "";
    try { saved = localStorage.getItem(NAMESPACE_STORAGE) || ""; } catch (_) { saved = ""; }
    state.namespace = params.get("namespace") || saved || "alephbet";
    state.experiment = params.has("experiment") ? params.get("experiment") : null;
    for (const [name, key] of FRAGMENT) {
      const text = params.get(name);
      state[key] = text === null ? DEFAULTS[key] : LISTS.has(key) ? text.split(",").filter(Boolean) : text;
    }
    if (!["sequential", "fixed"].includes(state.mode)) state.mode = DEFAULTS.mode;
    if (!["alephbet", "segment"].includes(state.source)) state.source = DEFAULTS.source;
    $("namespace").value = state.namespace;
  }
  function writeLocation() {
    const params = new URLSearchParams({ namespace: state.namespace });
    if (state.experiment !== null) {
      params.set("experiment", state.experiment);
      for (const [name, key] of FRAGMENT) {
        const value = LISTS.has(key) ? state[key].join(",") : state[key];
        if (value !== "" && !(name === "source" && !value)) params.set(name, value);
      }
    }
    const fragment = "#" + params.toString();
    if (window.location.hash !== fragment) history.replaceState(null, "", fragment);
  }
  function changeNamespace(event) {
    event.preventDefault();
    const namespace = $("namespace").value.trim();
    if (!namespace) { showMessage("Enter a namespace (AlephBet's default is “alephbet”)."); return; }
    if (namespace !== state.namespace) state.experiment = null;
    state.namespace = namespace;
    listVerdicts.clear();   // "Load" asks again
    try { localStorage.setItem(NAMESPACE_STORAGE, namespace); } catch (_) { /* private mode */ }
    writeLocation();
    loadExperiments();
    if (state.view === "events") loadEvents();
  }

  $("namespace-form").addEventListener("submit", changeNamespace);
  $("segment-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const name = $("segment-experiment").value.trim();
    if (name) selectExperiment(name, "segment");
  });
  $("view-experiments").addEventListener("click", () => showView("experiments"));
  $("view-events").addEventListener("click", () => showView("events"));
  $("events-form").addEventListener("submit", loadEvents);
  $("events-interval").addEventListener("change", defaultEventsWindow);
  $("key-form").addEventListener("submit", saveKey);
  $("change-key").addEventListener("click", openKeyPanel);
  $("cancel-key").addEventListener("click", () => { $("key-panel").hidden = true; });
  // A link pasted into this tab (only the fragment changes) opens its view.
  window.addEventListener("hashchange", () => { readLocation(); if (storedKey()) loadExperiments(); });
  let resizing = null;
  window.addEventListener("resize", () => { clearTimeout(resizing); resizing = setTimeout(() => fitChartText(document), 100); });
  readLocation();
  defaultEventsWindow();
  renderKeySummary();
  if (storedKey()) loadExperiments();
  else { openKeyPanel(); showMessage("Enter this deployment's API key to see results."); $("message").className = "info"; }
})();
