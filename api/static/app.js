// The candleflow dashboard: candles, volume, spread and alerts from this server's JSON API
// (/markets, /candles/{market}, /alerts, /health), drawn with the vendored Lightweight Charts
// (global `LightweightCharts`, api/static/vendor). Plain ES2020, no build step, and no request to
// any other origin.
//
// Each (re)draw ends by setting on #chart: data-market, data-interval, data-kind ("trades" or
// "mid"), data-bars (candles drawn), data-spread-bars (candles with a spread), data-incomplete-bars,
// data-markers (alert markers drawn) and data-state ("loading", "ready" or "error"); the browser
// test (tests/api/test_dashboard_browser.py) reads them.
//
// Modules: config.js (settings and colours), dom.js (the page's elements), api.js (requests),
// format.js (times and prices as text), chart.js (the chart and its legend), panels.js (quote and
// alert list), and this one: page state, loading and polling, controls and the URL.

import {
  CANDLE_LIMIT, INTERVALS, POLL_ALERTS_MS, POLL_CANDLES_MS, POLL_HEALTH_MS,
} from "./config.js";
import { ui, setChartAttributes } from "./dom.js";
import { ApiError, candlesPath, fetchAlerts, getJson, isSpreadOnly, parseMarkets } from "./api.js";
import {
  applyCandles, createView, latestCandle, publish, renderLegend, setMarkers,
} from "./chart.js";
import { renderAlerts, renderQuote } from "./panels.js";

// ---- page state ---------------------------------------------------------------------------------

const page = {
  markets: new Map(),
  market: null,
  interval: "1m",
  generation: 0, // bumped on every market/interval switch; stale responses are dropped
  view: null,
  candleTimer: 0,
  alertTimer: 0,
  healthTimer: 0,
  bannerRetry: null,
};

/** An unobtrusive error line; `source` lets a later success of the same kind clear it. */
function showBanner(message, retry, source = "") {
  ui.bannerText.textContent = message;
  ui.banner.dataset.source = source;
  ui.banner.hidden = false;
  page.bannerRetry = retry;
  ui.retry.hidden = !retry;
}

function hideBanner() {
  ui.banner.hidden = true;
  page.bannerRetry = null;
}

function setLive(mode, detail) {
  ui.live.dataset.live = mode;
  ui.liveText.textContent = { on: "live", paused: "paused", retrying: "retrying", idle: "connecting" }[mode];
  ui.live.title = detail || "Polling for new candles every 5 s";
}

/** Whether `view` is still on the page; a switch replaces it, and late callbacks then do nothing. */
const isCurrentView = (view) => page.view === view;

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

// ---- loading and polling ------------------------------------------------------------------------

function stopPolling() {
  clearTimeout(page.candleTimer);
  clearTimeout(page.alertTimer);
}

async function draw() {
  const generation = ++page.generation;
  const { market, interval } = page;
  stopPolling();
  setChartAttributes({ state: "loading", market, interval });
  renderControls();
  let body;
  let alerts = [];
  try {
    const [candleResult, alertResult] = await Promise.allSettled([
      getJson(candlesPath(market, interval)),
      fetchAlerts(market),
    ]);
    if (candleResult.status === "rejected") throw candleResult.reason;
    body = candleResult.value;
    if (alertResult.status === "fulfilled") alerts = alertResult.value;
    else showBanner(`Alerts unavailable: ${alertResult.reason.message}`, () => pollAlerts(generation), "alerts");
  } catch (err) {
    if (generation !== page.generation) return;
    if (page.view) {
      page.view.chart.remove();
      page.view = null;
    }
    setChartAttributes({ state: "error", bars: 0, spreadBars: 0, incompleteBars: 0, markers: 0 });
    setLive("retrying", err.message);
    showBanner(`Could not load ${market} ${interval} candles: ${err.message}`, draw, "draw");
    page.candleTimer = setTimeout(draw, retryDelay(err, POLL_CANDLES_MS * 2));
    return;
  }
  if (generation !== page.generation) return;
  if (page.view) page.view.chart.remove();
  const view = createView(market, interval, body);
  page.view = view;
  view.alerts = alerts;
  setMarkers(view);
  renderLegend(view, latestCandle(view));
  renderQuote(view);
  renderAlerts(view, isCurrentView);
  await nextFrame();
  await nextFrame(); // the chart paints on animation frames: "ready" means drawn
  if (generation !== page.generation) return;
  publish(view);
  if (ui.banner.dataset.source === "draw") hideBanner();
  setLive(document.hidden ? "paused" : "on");
  page.candleTimer = setTimeout(() => pollCandles(generation), POLL_CANDLES_MS);
  page.alertTimer = setTimeout(() => pollAlerts(generation), POLL_ALERTS_MS);
}

function retryDelay(err, fallback) {
  return err && err.status === 429 && err.retryAfterSeconds ? err.retryAfterSeconds * 1000 : fallback;
}

async function pollCandles(generation) {
  if (generation !== page.generation || !page.view) return;
  if (document.hidden) {
    setLive("paused", "Paused while the tab is hidden");
    return; // resumed by visibilitychange
  }
  const view = page.view;
  let delay = POLL_CANDLES_MS;
  try {
    const startMs = view.lastTime === null ? undefined : view.lastTime * 1000;
    const body = await getJson(candlesPath(view.market, view.interval, startMs));
    if (generation !== page.generation) return;
    const outcome = applyCandles(view, body.candles || []);
    if (outcome === "redraw") {
      draw();
      return;
    }
    if (outcome === "added") setMarkers(view);
    if (body.candles && body.candles.length >= CANDLE_LIMIT) delay = 0; // catching up after a pause
    renderQuote(view);
    renderLegend(view, latestCandle(view));
    publish(view);
    if (ui.banner.dataset.source === "candles") hideBanner();
    setLive("on", `Last poll ${new Date().toISOString().slice(11, 19)} UTC; every 5 s`);
  } catch (err) {
    if (generation !== page.generation) return;
    delay = retryDelay(err, POLL_CANDLES_MS * 2);
    setLive("retrying", err.message);
    const message = `Live update failed: ${err.message}. Retrying in ${Math.round(delay / 1000)} s.`;
    showBanner(message, () => pollCandles(generation), "candles");
  }
  clearTimeout(page.candleTimer);
  page.candleTimer = setTimeout(() => pollCandles(generation), delay);
}

async function pollAlerts(generation) {
  if (generation !== page.generation || !page.view) return;
  if (document.hidden) return;
  const view = page.view;
  let delay = POLL_ALERTS_MS;
  try {
    const alerts = await fetchAlerts(view.market);
    if (generation !== page.generation) return;
    view.alerts = alerts;
    setMarkers(view);
    renderAlerts(view, isCurrentView);
    publish(view);
    if (ui.banner.dataset.source === "alerts") hideBanner();
  } catch (err) {
    if (generation !== page.generation) return;
    delay = retryDelay(err, POLL_ALERTS_MS);
    showBanner(`Alerts unavailable: ${err.message}`, () => pollAlerts(generation), "alerts");
  }
  clearTimeout(page.alertTimer);
  page.alertTimer = setTimeout(() => pollAlerts(generation), delay);
}

async function pollHealth() {
  clearTimeout(page.healthTimer);
  if (!document.hidden) {
    try {
      // 503 still carries the report ({"status": "down", "problems": [...]}), so read it either way.
      const response = await fetch("health", { headers: { Accept: "application/json" }, cache: "no-store" });
      if (response.status === 429) throw new ApiError("health", 429, "rate limited");
      const health = await response.json();
      const status = ["ok", "degraded"].includes(health.status) ? health.status : "down";
      ui.health.dataset.status = status;
      ui.health.textContent = { ok: "healthy", degraded: "degraded", down: "down" }[status];
      const problems = Array.isArray(health.problems)
        ? health.problems.map((p) => (typeof p === "string" ? p : JSON.stringify(p))).join("; ")
        : "";
      ui.health.title = `GET /health: ${health.status}${problems ? ` (${problems})` : ""}`;
    } catch (err) {
      ui.health.dataset.status = "down";
      ui.health.textContent = err.status === 429 ? "rate limited" : "unreachable";
      ui.health.title = err.message;
    }
  }
  page.healthTimer = setTimeout(pollHealth, POLL_HEALTH_MS);
}

// ---- controls and URL ---------------------------------------------------------------------------

function renderMarketOptions() {
  const groups = [
    ["Binance · trades", [...page.markets.keys()].filter((m) => !isSpreadOnly(m)).sort()],
    ["Spread only · mid price", [...page.markets.keys()].filter(isSpreadOnly).sort()],
  ];
  ui.market.replaceChildren();
  for (const [label, markets] of groups) {
    if (!markets.length) continue;
    const group = document.createElement("optgroup");
    group.label = label;
    for (const market of markets) {
      const option = document.createElement("option");
      option.value = market;
      option.textContent = market;
      group.append(option);
    }
    ui.market.append(group);
  }
  ui.market.disabled = page.markets.size === 0;
}

function renderControls() {
  ui.market.value = page.market;
  const available = page.markets.get(page.market) || new Set();
  for (const interval of INTERVALS) {
    const button = ui.intervals[interval];
    button.disabled = !available.has(interval);
    button.setAttribute("aria-pressed", String(interval === page.interval));
    button.title = available.has(interval) ? `${interval} candles` : `no ${interval} candles for ${page.market}`;
  }
}

function defaultMarket() {
  const markets = [...page.markets.keys()];
  return markets.filter((m) => !isSpreadOnly(m)).sort()[0] || markets.sort()[0] || null;
}

function pickInterval(market, wanted) {
  const available = page.markets.get(market) || new Set();
  if (available.has(wanted)) return wanted;
  return INTERVALS.find((i) => available.has(i)) || "1m";
}

/** Market and interval from the URL, corrected to what exists (with a note when they were not). */
function selectionFromUrl() {
  const params = new URLSearchParams(location.search);
  let market = params.get("market");
  const notes = [];
  if (market && !page.markets.has(market)) {
    notes.push(`no market "${market}"`);
    market = null;
  }
  market = market || defaultMarket();
  const wanted = params.get("interval") || "1m";
  const interval = pickInterval(market, wanted);
  if (params.has("interval") && interval !== wanted) notes.push(`no ${wanted} candles for ${market}`);
  return { market, interval, notes };
}

function writeUrl(push) {
  const params = new URLSearchParams(location.search);
  params.set("market", page.market);
  params.set("interval", page.interval);
  const url = `${location.pathname}?${params}`;
  if (url === `${location.pathname}${location.search}`) return;
  if (push) history.pushState(null, "", url);
  else history.replaceState(null, "", url);
}

function select(market, interval, push) {
  page.market = market;
  page.interval = pickInterval(market, interval);
  writeUrl(push);
  hideBanner();
  draw();
}

async function start() {
  ui.retry.addEventListener("click", () => {
    const retry = page.bannerRetry;
    hideBanner();
    if (retry) retry();
  });
  ui.dismiss.addEventListener("click", hideBanner);
  ui.market.addEventListener("change", () => select(ui.market.value, page.interval, true));
  for (const interval of INTERVALS) {
    ui.intervals[interval].addEventListener("click", () => {
      if (interval !== page.interval) select(page.market, interval, true);
    });
  }
  window.addEventListener("popstate", () => {
    const { market, interval } = selectionFromUrl();
    if (market) select(market, interval, false);
  });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden || !page.view) return;
    const generation = page.generation;
    pollCandles(generation);
    pollAlerts(generation);
    pollHealth();
  });
  pollHealth();
  await loadMarkets();
}

async function loadMarkets() {
  setChartAttributes({ state: "loading" });
  try {
    page.markets = parseMarkets(await getJson("markets"));
  } catch (err) {
    setChartAttributes({ state: "error" });
    setLive("retrying", err.message);
    showBanner(`Could not load the market list: ${err.message}`, loadMarkets, "markets");
    return;
  }
  renderMarketOptions();
  if (page.markets.size === 0) {
    setChartAttributes({ state: "ready", bars: 0, spreadBars: 0, incompleteBars: 0, markers: 0 });
    ui.empty.hidden = false;
    ui.empty.textContent = "No candles stored yet: start the pipeline (./scripts/start.sh).";
    setLive("idle");
    return;
  }
  const { market, interval, notes } = selectionFromUrl();
  select(market, interval, false);
  if (notes.length) showBanner(`Showing ${market} ${interval}: ${notes.join("; ")}.`, null);
}

start();
