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

  // Sequential (always-valid) figures by default: people look every day, and only those stay valid when they do.
  const state = { namespace: "alephbet", experiment: null, source: "alephbet", control: "", confidence: "0.95",
                  dailyMetric: "participants", mode: "sequential", correction: "holm", dimension: "", view: "experiments" };
  let loadSequence = 0;   // answers to superseded requests are dropped
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
          name: item.experiment,
          variants: results.length,
          participants: results.reduce((sum, result) => sum + (result.trials || 0), 0),
          hasGoals: Boolean(firstGoal),
        };
      });
  }

  async function loadExperiments() {
    const sequence = ++loadSequence;
    const namespace = state.namespace;
    let report;
    try {
      report = await api("GET", "experiments", { namespace });
    } catch (error) {
      if (sequence === loadSequence) { renderExperimentList(null); renderNoSelection(); fail(error); }
      return;
    }
    if (sequence !== loadSequence) return;
    clearMessage();
    showFreshness(Array.isArray(report) && report[0] && report[0].meta ? report[0].meta.freshness : null);
    const experiments = experimentsFromReport(report);
    renderExperimentList(experiments);
    if (state.experiment !== null && experiments.some((e) => e.name === state.experiment)) {
      loadExperiment(state.experiment);
    } else {
      state.experiment = null;
      renderNoSelection();
    }
  }

  function renderExperimentList(experiments) {
    // null: the list could not be read (the message says why), so it is neither shown nor called empty.
    const list = $("experiments");
    list.replaceChildren(...(experiments || []).map((experiment) => el("li", {},
      el("button", {
        type: "button", class: "experiment-link", "data-experiment": experiment.name,
        "aria-current": experiment.name === state.experiment ? "true" : null,
        onclick: () => selectExperiment(experiment.name),
      }, experiment.name,
      el("span", { class: "count", text: experiment.hasGoals
        ? `${plural(experiment.variants, "variant")} · ${plural(experiment.participants, "participant")}` : "no goals yet" })))));
    const empty = $("experiments-empty");
    empty.hidden = !experiments || experiments.length > 0;
    empty.replaceChildren(`No experiments in namespace “${state.namespace}” yet. `,
      el("a", { href: apiUrl("snippet", { namespace: state.namespace }).href, target: "_blank", rel: "noopener", text: "Get the AlephBet snippet" }),
      " to start tracking.");
  }

  function markSelected() {
    for (const button of document.querySelectorAll("#experiments button")) {
      if (button.getAttribute("data-experiment") === state.experiment) button.setAttribute("aria-current", "true");
      else button.removeAttribute("aria-current");
    }
  }

  function selectExperiment(name, source = "alephbet") {
    if (name !== state.experiment || source !== state.source) {
      state.control = ""; state.dailyMetric = "participants"; state.dimension = "";
    }
    state.experiment = name;
    state.source = source;
    markSelected();
    writeLocation();
    loadExperiment(name);
  }

  // ---------- one experiment ----------
  async function loadExperiment(name) {
    const sequence = ++loadSequence;
    if (name === "." || name === "..") { renderUnreachable(name); return; }
    const segment = state.source === "segment";
    const params = { namespace: state.namespace, control: state.control, confidence: state.confidence, correction: state.correction,
      dimension: state.dimension, source: segment ? "segment" : "" };
    let results, daily;
    try {
      [results, daily] = await Promise.all([
        api("GET", experimentPath(name, "/results"), params),
        segment ? null : api("GET", experimentPath(name, "/daily"), { namespace: state.namespace }),
      ]);
    } catch (error) {
      if (sequence === loadSequence) fail(error);
      return;
    }
    if (sequence !== loadSequence) return;
    clearMessage();
    showFreshness(results.freshness);
    renderExperiment(results, daily);
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

  let lastDaily = null;
  function renderExperiment(results, daily) {
    lastDaily = daily;
    const variants = results.variants || [];
    const color = colorOf(variants.map((v) => v.label));
    const goals = results.goals || [];
    // replaceChildren would show a null as the text "null": absent sections are left out.
    $("detail").replaceChildren(...[
      renderTitle(results, variants),
      renderParticipants(results, color),
      renderModeNote(results),
      ...(goals.length ? goals.map((goal) => renderGoal(goal, results, color))
        : [el("div", { class: "panel" }, el("p", { class: "empty", text: "No goals tracked yet: only participation so far." }))]),
      results.breakdown ? renderBreakdown(results.breakdown, goals, results.control, color) : null,
      daily ? renderDaily(daily, results, color) : null,
    ].filter((section) => section !== null && section !== undefined));
  }

  function renderTitle(results, variants) {
    const control = el("select", { id: "control", "aria-label": "Control variant", onchange: (event) => { state.control = event.target.value; loadExperiment(state.experiment); } },
      ...variants.map((v) => el("option", { value: v.label, selected: v.label === results.control ? "selected" : null, text: v.label })));
    const confidence = el("select", { id: "confidence", "aria-label": "Confidence", onchange: (event) => { state.confidence = event.target.value; loadExperiment(state.experiment); } },
      ...CONFIDENCES.map((c) => el("option", { value: c, selected: Number(c) === Number(results.confidence) ? "selected" : null, text: percent(Number(c), 0) })));
    const mode = el("select", { id: "mode", "aria-label": "Statistics", onchange: (event) => { state.mode = event.target.value; renderExperiment(results, lastDaily); } },
      ...MODES.map(([value, text]) => el("option", { value, selected: value === state.mode ? "selected" : null, text })));
    const correction = el("select", { id: "correction", "aria-label": "Multiple-comparison correction", onchange: (event) => { state.correction = event.target.value; loadExperiment(state.experiment); } },
      ...CORRECTIONS.map(([value, text]) => el("option", { value, selected: value === (results.correction || state.correction) ? "selected" : null, text })));
    return el("div", { class: "panel" },
      el("div", { class: "title-row" },
        el("h2", { id: "experiment-name", text: results.experiment }),
        results.source === "segment" ? null
          : el("button", { type: "button", class: "danger", id: "delete-experiment", onclick: () => deleteExperiment(results.experiment) }, "Delete experiment…")),
      el("div", { class: "controls" },
        el("label", {}, "Control ", control),
        el("label", {}, "Confidence ", confidence),
        el("label", {}, "Statistics ", mode),
        el("label", {}, "Correction ", correction),
        breakdownForm(),
        el("span", { class: "note", text: results.source === "segment"
          ? `Segment experiment · namespace “${results.namespace}” · ${plural(results.multiple_exposures || 0, "user")} saw more than one variant`
          : `namespace “${results.namespace}”` })));
  }

  function breakdownForm() {
    const input = el("input", { id: "dimension", list: "dimension-options", value: state.dimension, placeholder: "none",
      autocomplete: "off", spellcheck: "false", "aria-label": "Break down by" });
    return el("form", { id: "dimension-form", onsubmit: (event) => {
      event.preventDefault();
      state.dimension = input.value.trim();
      loadExperiment(state.experiment);
    } }, el("label", { for: "dimension" }, "Break down by "), input, el("button", { type: "submit", text: "Apply" }));
  }

  function renderBreakdown(breakdown, goals, control, color) {
    // One row per (segment, variant): participants and each goal's rate, as the API answers them.
    const rows = [];
    for (const segment of breakdown.segments || []) {
      const name = segment.other ? "(other)" : segment.value === null ? "(none)" : segment.value;
      const goalOf = new Map((segment.goals || []).map((goal) => [goal.goal, goal]));
      for (const variant of segment.variants || []) {
        rows.push(el("tr", { "data-segment": name, "data-variant": variant.label },
          el("td", { "data-field": "segment", text: name }),
          el("td", {}, el("span", { class: "swatch", style: `background:${color(variant.label)}` }), variant.label,
            variant.label === control ? el("span", { class: "control-tag", text: "control" }) : null),
          el("td", { "data-field": "participants", text: integer(variant.participants) }),
          ...goals.map((goal) => {
            const arm = ((goalOf.get(goal.goal) || {}).variants || []).find((v) => v.label === variant.label) || {};
            return el("td", { "data-goal": goal.goal },
              el("span", { "data-field": "rate", text: percent(arm.rate) }),
              el("small", { "data-field": "successes", text: `${integer(arm.successes)} / ${integer(arm.trials)}` }));
          })));
      }
    }
    return el("div", { class: "panel", id: "breakdown" },
      el("h2", { text: `Breakdown by ${breakdown.dimension}` }),
      el("div", { class: "table-scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", { text: "Segment" }), el("th", { text: "Variant" }), el("th", { text: "Participants" }),
          ...goals.map((goal) => el("th", { text: `${goal.goal}: rate` })))),
        el("tbody", {}, ...rows))),
      el("p", { class: "note", text: "The 20 values with the most participants; the rest are summed as (other)." }));
  }

  function renderParticipants(results, color) {
    const variants = results.variants || [];
    const total = variants.reduce((sum, v) => sum + (v.participants || 0), 0);
    const srm = results.srm || {};
    const unexpected = Array.isArray(srm.unexpected_variants) ? srm.unexpected_variants : [];
    const rows = variants.map((v) => el("tr", { "data-variant": v.label },
      el("td", {}, el("span", { class: "swatch", style: `background:${color(v.label)}` }), v.label,
        v.label === results.control ? el("span", { class: "control-tag", text: "control" }) : null),
      el("td", { "data-field": "participants", text: integer(v.participants) }),
      el("td", { "data-field": "share", text: total ? percent(v.participants / total, 1) : "—" })));
    return el("div", { class: "panel", id: "participants" },
      el("h2", { text: "Participants" }),
      el("div", { class: "table-scroll" }, el("table", {},
        el("thead", {}, el("tr", {}, el("th", { text: "Variant" }), el("th", { text: "Participants" }), el("th", { text: "Share" }))),
        el("tbody", {}, ...rows))),
      srm.mismatch
        ? el("div", { class: "warning", id: "srm-warning", role: "status" },
            el("strong", { text: "Sample ratio mismatch. " }),
            `Participants are not split between variants as expected (chi-square ${pIs(srm.p_value)}). ` +
            "Assignment or tracking is probably broken; don't trust these results until it is fixed.",
            unexpected.length
              ? el("span", { id: "srm-unexpected", text: ` Goal events arrived for ${unexpected.length === 1 ? "a variant" : "variants"} nobody was assigned to: ${unexpected.join(", ")}.` })
              : null)
        : el("p", { class: "ok-note", id: "srm-ok", text: isNumber(srm.p_value)
            ? `Split between variants looks as expected (sample ratio check ${pIs(srm.p_value)}).` : "" }));
  }

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

  function renderModeNote(results) {
    const correction = CORRECTION_NAMES[results.correction] || "adjusted";
    const marking = results.correction === "none"
      ? "Green or red marks a p-value below 1 − confidence, with no correction for the number of comparisons."
      : `Green or red marks a ${correction}-adjusted p-value below 1 − confidence, adjusted across every variant, goal and value comparison of this experiment.`;
    const text = state.mode === "sequential"
      ? "Showing sequential (always-valid) figures: their p-values and intervals stay valid however often you look, " +
        "so you may act as soon as a result is marked. " + marking
      : "Showing fixed-horizon figures: valid only when read once, at a sample size chosen in advance. " +
        "Checking every day and stopping at the first significant result makes false positives several times likelier. " + marking;
    return el("div", { class: "panel" }, el("p", { id: "mode-note", "data-mode": state.mode, text }));
  }

  function renderGoal(goal, results, color) {
    const alpha = 1 - Number(results.confidence);
    const best = goal.chance_to_be_best || {};
    const confidenceLabel = percent(Number(results.confidence), 0);
    const rows = (goal.variants || []).map((v) => {
      const isControl = v.label === results.control;
      const verdict = isControl ? null : verdictClass(v, alpha);
      const decision = isControl ? {} : decisionOf(v);
      return el("tr", { "data-variant": v.label },
        el("td", {}, el("span", { class: "swatch", style: `background:${color(v.label)}` }), v.label,
          isControl ? el("span", { class: "control-tag", text: "control" }) : null),
        el("td", { "data-field": "successes", text: `${integer(v.successes)} / ${integer(v.trials)}` }),
        el("td", {}, el("span", { "data-field": "rate", text: percent(v.rate) }),
          el("small", { "data-field": "rate-ci", text: interval(v.rate_ci, (x) => percent(x)) })),
        el("td", { class: verdict },
          el("span", { "data-field": "uplift", text: isControl || !v.uplift ? "—" : signedPercent(v.uplift.relative) }),
          el("small", { "data-field": "uplift-ci", text: isControl || !v.uplift ? "" : interval(decision.relative_ci, (x) => signedPercent(x)) })),
        el("td", { class: verdict },
          el("span", { "data-field": "p-value", text: isControl ? "—" : pValue(decision.p_value_adjusted) }),
          el("small", { "data-field": "p-value-raw", text: isControl ? "" : `raw ${pValue(decision.p_value)}` })),
        el("td", { "data-field": "chance-to-beat-control", text: isControl ? "—" : percent(v.chance_to_beat_control, 1) }),
        el("td", { "data-field": "chance-to-be-best", text: percent(best[v.label], 1) }));
    });
    return el("div", { class: "panel goal", "data-goal": goal.goal },
      el("h3", {}, "Goal: ", el("span", { class: "goal-name", text: goal.goal })),
      el("div", { class: "goal-body" },
        el("div", { class: "table-scroll" }, el("table", { class: "goal-table" },
          el("thead", {}, el("tr", {},
            el("th", { text: "Variant" }), el("th", { text: "Conversions" }),
            el("th", { text: `Rate (${confidenceLabel} CI)` }), el("th", { text: `Uplift vs control (${confidenceLabel} CI)` }),
            el("th", { text: "p-value (adjusted)" }), el("th", { text: "Chance to beat control" }), el("th", { text: "Chance to be best" }))),
          el("tbody", {}, ...rows))),
        rateChart(goal.variants || [], color, confidenceLabel)),
      renderValue(goal.value));
  }

  function renderValue(value) {
    // Goals whose events carry numeric values: per variant count, sum and mean per participant,
    // and for each non-control variant the difference in mean vs control (Welch, or its confidence sequence).
    const perVariant = value && Array.isArray(value.variants) ? value.variants : null;
    if (!perVariant || !perVariant.length) return null;
    return el("div", { class: "table-scroll value-table" }, el("table", {},
      el("thead", {}, el("tr", {}, el("th", { text: "Value" }), el("th", { text: "Participants with a value" }), el("th", { text: "Sum" }),
        el("th", { text: "Mean per participant" }), el("th", { text: "Difference vs control" }), el("th", { text: "p-value (adjusted)" }))),
      el("tbody", {}, ...perVariant.map((v) => {
        const compared = "p_value" in v;
        const decision = compared ? decisionOf(v) : {};
        return el("tr", { "data-variant": v.label },
          el("td", { text: v.label }), el("td", { "data-field": "value-count", text: integer(v.count) }),
          el("td", { "data-field": "value-sum", text: decimal(v.sum) }), el("td", { "data-field": "value-mean", text: decimal(v.mean) }),
          el("td", {}, el("span", { "data-field": "value-difference", text: compared ? signedDecimal(v.difference) : "—" }),
            el("small", { "data-field": "value-difference-ci", text: interval(decision.absolute_ci, signedDecimal) })),
          el("td", {}, el("span", { "data-field": "value-p-value", text: compared ? pValue(decision.p_value_adjusted) : "—" }),
            el("small", { text: compared ? `raw ${pValue(decision.p_value)}` : "" })));
      }))));
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
    const highest = Math.max(0, ...variants.flatMap((v) => [v.rate, ...(Array.isArray(v.rate_ci) ? v.rate_ci : [])]).filter(isNumber));
    const maximum = Math.min(1, niceMax(highest)) || 1;
    const y = (rate) => top + plotHeight - (Math.max(0, Math.min(rate, maximum)) / maximum) * plotHeight;
    const slot = plotWidth / Math.max(1, variants.length);
    const barWidth = Math.min(48, slot * 0.6);
    const chart = svg("svg", { class: "rate-chart", viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      "aria-label": `Conversion rate per variant with ${confidenceLabel} confidence intervals` });
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
        svg("title", { text: `${v.label}: ${percent(v.rate)} (${interval(v.rate_ci, (x) => percent(x))})` }));
      chart.append(bar);
      if (Array.isArray(v.rate_ci) && v.rate_ci.every(isNumber)) {
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
    const goals = (results.goals || []).map((g) => g.goal);
    if (state.dailyMetric !== "participants" && !goals.includes(state.dailyMetric)) state.dailyMetric = "participants";
    const metric = el("select", { id: "daily-metric", "aria-label": "Daily chart metric",
      onchange: (event) => { state.dailyMetric = event.target.value; $("daily").replaceWith(renderDaily(daily, results, color)); } },
      el("option", { value: "participants", text: "Participants (cumulative)" }),
      ...goals.map((goal) => el("option", { value: goal, selected: goal === state.dailyMetric ? "selected" : null, text: `${goal}: conversion rate (cumulative)` })));
    const value = (point) => state.dailyMetric === "participants" ? point.participants
      : point.participants ? (point.goals[state.dailyMetric] || 0) / point.participants : null;
    return el("div", { class: "panel", id: "daily" },
      el("div", { class: "title-row" }, el("h2", { text: "Cumulative, day by day" }), metric),
      series.size ? dailyChart(series, value, color, state.dailyMetric !== "participants")
        : el("p", { class: "empty", text: "No daily data yet." }),
      el("div", { class: "legend" }, ...[...series.keys()].map((label) =>
        el("span", {}, el("span", { class: "swatch", style: `background:${color(label)}` }), label))));
  }

  function dailyChart(series, value, color, asRate) {
    const days = [...new Set([...series.values()].flat().map((p) => p.day))].sort();
    const values = [...series.values()].flat().map(value).filter(isNumber);
    const format = (v) => asRate ? axisPercent(v) : integer(v);
    return lineChart({
      id: "daily-chart", description: "Cumulative values per day and variant", count: days.length,
      maximum: asRate ? Math.min(1, niceMax(Math.max(0, ...values))) || 1 : niceMax(Math.max(0, ...values)),
      gridlines: [0, 0.25, 0.5, 0.75, 1], format, labelLast: true,
      tick: (index) => ({ text: days[index],
        anchor: days.length === 1 ? "middle" : index === 0 ? "start" : index === days.length - 1 ? "end" : "middle" }),
      lines: [...series].map(([label, points]) => ({
        attributes: { class: "daily-line", "data-variant": label, fill: "none", stroke: color(label), "stroke-width": 2 },
        points: points.filter((p) => isNumber(value(p))).map((p) => ({ index: days.indexOf(p.day), value: value(p), day: p.day })),
        marker: (point, cx, cy) => svg("circle", { class: "daily-point", "data-variant": label, cx, cy, r: 3, fill: color(label) },
          svg("title", { text: `${label} · ${point.day}: ${format(point.value)}` })),
      })),
    });
  }

  // One line chart for the daily and the events view: `count` evenly spaced positions, gridlines at
  // `gridlines` (fractions of `maximum`), about eight x labels (`tick`), and per line a polyline of
  // its points ({index, value}) with an optional marker drawn at each point.
  function lineChart({ id, description, count, maximum, gridlines, format, tick, labelLast, lines }) {
    const width = 760, height = 240, left = 52, right = 12, top = 10, bottom = 28;
    const plotWidth = width - left - right, plotHeight = height - top - bottom;
    const x = (index) => left + (count === 1 ? plotWidth / 2 : (index / (count - 1)) * plotWidth);
    const y = (v) => top + plotHeight - (v / maximum) * plotHeight;
    const chart = svg("svg", { id, viewBox: `0 0 ${width} ${height}`, width: "100%", role: "img",
      "aria-label": description, preserveAspectRatio: "xMidYMid meet" });
    for (const fraction of gridlines) {
      chart.append(svg("line", { class: "axis", x1: left, x2: width - right, y1: y(maximum * fraction), y2: y(maximum * fraction) }),
        svg("text", { x: left - 6, y: y(maximum * fraction) + 4, "text-anchor": "end", text: format(maximum * fraction) }));
    }
    const labelEvery = Math.max(1, Math.ceil(count / 8));
    for (let index = 0; index < count; index++) {
      if (index % labelEvery === 0 || (labelLast && index === count - 1)) {
        const { text, anchor } = tick(index);
        chart.append(svg("text", { x: x(index), y: height - 8, "text-anchor": anchor, text }));
      }
    }
    for (const line of lines) {
      chart.append(svg("polyline", { ...line.attributes,
        points: line.points.map((p) => `${x(p.index).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ") }, ...(line.children || [])));
      if (line.marker) for (const p of line.points) chart.append(line.marker(p, x(p.index), y(p.value)));
    }
    return chart;
  }

  // ---------- events view ----------
  function showView(view) {
    state.view = view;
    $("experiments-view").hidden = view !== "experiments";
    $("events-view").hidden = view !== "events";
    $("view-experiments").setAttribute("aria-pressed", String(view === "experiments"));
    $("view-events").setAttribute("aria-pressed", String(view === "events"));
    if (view === "events") loadEvents();
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

  function renderEventNames(names, chosen) {
    const listed = names.map((item) => item.name);
    if (chosen && !listed.includes(chosen)) listed.unshift(chosen);
    $("events-event").replaceChildren(el("option", { value: "", text: "All events" }),
      ...listed.map((name) => {
        const counted = names.find((item) => item.name === name);
        return el("option", { value: name, selected: name === chosen ? "selected" : null,
          text: counted ? `${visibleName(name)} (${counted.events})` : visibleName(name) });
      }));
  }

  function renderEvents(series) {
    const metric = $("events-metric").value;
    const lines = series.series || [];
    // Without group_by there is one series, of every event; with it, null is the events without the property.
    const groupName = (line) => !series.group_by ? "All" : line.other ? "(other)" : line.group === null ? "(none)" : line.group;
    const color = colorOf(lines.map(groupName));
    const sum = (numbers) => (numbers || []).reduce((total, n) => total + n, 0);
    $("events-result").replaceChildren(el("div", { class: "panel", id: "events-panel" },
      el("h2", { text: `${series.event || "All events"} · ${metric === "users" ? "unique users" : "events"} per ${series.interval}` +
        (series.group_by ? ` by ${series.group_by}` : "") }),
      lines.length ? eventsChart(series, metric, groupName, color)
        : el("p", { class: "empty", id: "events-empty", text: `No events from ${series.from} to ${series.to}.` }),
      el("div", { class: "legend" }, ...lines.map((line) =>
        el("span", {}, el("span", { class: "swatch", style: `background:${color(groupName(line))}` }), groupName(line)))),
      el("div", { class: "table-scroll" }, el("table", { id: "events-table" },
        el("thead", {}, el("tr", {}, el("th", { text: series.group_by ? "Group" : "Series" }),
          el("th", { text: "Events" }), el("th", { text: "Peak unique users" }))),
        el("tbody", {}, ...lines.map((line) => el("tr", { "data-group": groupName(line) },
          el("td", { text: groupName(line) }),
          el("td", { "data-field": "events-total", text: integer(sum(line.events)) }),
          el("td", { "data-field": "users-peak", text: integer(Math.max(0, ...(line.users || []))) }))))))));
  }

  function eventsChart(series, metric, groupName, color) {
    const intervals = series.intervals || [], lines = series.series || [];
    return lineChart({
      id: "events-chart", description: `${metric} per interval`, count: intervals.length,
      maximum: niceMax(Math.max(0, ...lines.flatMap((line) => line[metric] || []))),
      gridlines: [0, 0.5, 1], format: integer, labelLast: false,
      // Centred under their point (the first one's half fits in the axis gutter), so neighbours never overlap.
      tick: (index) => ({ anchor: "middle", text: series.interval === "hour"
        ? `${intervals[index].slice(5, 10)} ${intervals[index].slice(11, 16)}` : intervals[index].slice(0, 10) }),
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
  function readLocation() {
    const params = new URLSearchParams(window.location.hash.slice(1));
    let saved = "";
    try { saved = localStorage.getItem(NAMESPACE_STORAGE) || ""; } catch (_) { saved = ""; }
    state.namespace = params.get("namespace") || saved || "alephbet";
    state.experiment = params.has("experiment") ? params.get("experiment") : null;
    $("namespace").value = state.namespace;
  }
  function writeLocation() {
    const params = new URLSearchParams({ namespace: state.namespace });
    if (state.experiment !== null) params.set("experiment", state.experiment);
    history.replaceState(null, "", "#" + params.toString());
  }
  function changeNamespace(event) {
    event.preventDefault();
    const namespace = $("namespace").value.trim();
    if (!namespace) { showMessage("Enter a namespace (AlephBet's default is “alephbet”)."); return; }
    if (namespace !== state.namespace) state.experiment = null;
    state.namespace = namespace;
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
  $("key-form").addEventListener("submit", saveKey);
  $("change-key").addEventListener("click", openKeyPanel);
  $("cancel-key").addEventListener("click", () => { $("key-panel").hidden = true; });
  readLocation();
  renderKeySummary();
  if (storedKey()) loadExperiments();
  else { openKeyPanel(); showMessage("Enter this deployment's API key to see results."); $("message").className = "info"; }
})();
