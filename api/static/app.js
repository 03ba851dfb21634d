// The candleflow dashboard: candles, volume, spread and alerts from this server's JSON API
// (/markets, /candles/{market}, /alerts, /health), drawn with the vendored Lightweight Charts
// (global `LightweightCharts`, api/static/vendor). Plain ES2020, no build step, and no request to
// any other origin.
//
// Each (re)draw ends by setting on #chart: data-market, data-interval, data-kind ("trades" or
// "mid"), data-bars (candles drawn), data-spread-bars (candles with a spread), data-incomplete-bars,
// data-markers (alert markers drawn) and data-state ("loading", "ready" or "error"); the browser
// test (tests/api/test_dashboard_browser.py) reads them.

const LWC = window.LightweightCharts;

const INTERVALS = ["1m", "1h", "1d"];
const INTERVAL_SECONDS = { "1m": 60, "1h": 3600, "1d": 86400 };
const CANDLE_LIMIT = 1000; // the API's maximum
const POLL_CANDLES_MS = 5000;
const POLL_ALERTS_MS = 15000;
const POLL_HEALTH_MS = 15000;
const ALERT_LIMIT = 50;

const COLOR = {
  bg: "#0b0e14",
  text: "#8a93a6",
  grid: "rgba(42, 51, 68, 0.45)",
  border: "#1f2633",
  crosshair: "#566074",
  label: "#2a3344",
  up: "#2ebd85",
  down: "#f6465d",
  incomplete: "rgba(107, 115, 133, 0.35)",
  incompleteEdge: "#8c94a6",
  volUp: "rgba(46, 189, 133, 0.38)",
  volDown: "rgba(246, 70, 93, 0.38)",
  volIncomplete: "rgba(107, 115, 133, 0.35)",
  spread: "#5b9cff",
  spreadQuartile: "rgba(91, 156, 255, 0.55)",
  warning: "#f5a524",
  critical: "#e879f9",
  cleared: "#6b7385",
  watermark: "rgba(215, 220, 229, 0.045)",
};
const MONO = 'ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace';

const $ = (id) => document.getElementById(id);
const ui = {
  chart: $("chart"),
  empty: $("chart-empty"),
  market: $("market"),
  intervals: Object.fromEntries(INTERVALS.map((i) => [i, $(`interval-${i}`)])),
  live: $("live"),
  liveText: $("live-text"),
  health: $("health"),
  banner: $("banner"),
  bannerText: $("banner-text"),
  retry: $("retry"),
  dismiss: $("dismiss"),
  quoteLast: $("quote-last"),
  quoteChange: $("quote-change"),
  kindBadge: $("kind-badge"),
  legend: $("legend"),
  legendTime: $("legend-time"),
  legendO: $("legend-o"),
  legendH: $("legend-h"),
  legendL: $("legend-l"),
  legendC: $("legend-c"),
  legendDelta: $("legend-delta"),
  legendVolWrap: $("legend-vol-wrap"),
  legendV: $("legend-v"),
  legendSpreadWrap: $("legend-spread-wrap"),
  legendSpread: $("legend-spread"),
  legendIncomplete: $("legend-incomplete"),
  alerts: $("alerts"),
  alertsEmpty: $("alerts-empty"),
  alertCount: $("alert-count"),
  keySpread: $("key-spread"),
  keyMid: $("key-mid"),
};

// ---- the API ------------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(path, status, detail, retryAfterSeconds) {
    const where = path.split("?")[0];
    super(status ? `${where}: HTTP ${status}${detail ? ` (${detail})` : ""}` : `${where}: ${detail}`);
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

async function getJson(path) {
  let response;
  try {
    response = await fetch(path, { headers: { Accept: "application/json" }, cache: "no-store" });
  } catch (err) {
    throw new ApiError(path, 0, "server unreachable");
  }
  if (!response.ok) {
    let detail = response.statusText;
    try {
      const body = await response.json();
      if (body && body.detail) detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
    } catch {
      // not JSON: keep the status text
    }
    const retryAfter = Number(response.headers.get("Retry-After")) || 0;
    throw new ApiError(path, response.status, detail, retryAfter);
  }
  return response.json();
}

function candlesPath(market, interval, startMs) {
  const params = new URLSearchParams({ interval, limit: String(CANDLE_LIMIT) });
  if (startMs !== undefined) params.set("start", String(startMs));
  return `candles/${encodeURIComponent(market)}?${params}`;
}

function alertsPath(market) {
  return `alerts?${new URLSearchParams({ market, limit: String(ALERT_LIMIT) })}`;
}

/** "BTCUSDT_1m" ... -> Map market -> Set of intervals, in the server's order. */
function parseMarkets(ids) {
  const markets = new Map();
  for (const id of ids) {
    const cut = String(id).lastIndexOf("_");
    if (cut <= 0) continue;
    const market = id.slice(0, cut);
    const interval = id.slice(cut + 1);
    if (!INTERVALS.includes(interval)) continue;
    if (!markets.has(market)) markets.set(market, new Set());
    markets.get(market).add(interval);
  }
  return markets;
}

/** Binance symbols are alphanumeric; spread-only (BTCMarkets) markets have a dash. */
const isSpreadOnly = (market) => market.includes("-");

// ---- formatting ---------------------------------------------------------------------------------

const pad = (n) => String(n).padStart(2, "0");
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

function utcText(seconds, interval) {
  const d = new Date(seconds * 1000);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  return interval === "1d" ? day : `${day} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

/** Time-axis labels in UTC (the chart's times are UTC seconds; never the browser's zone). */
function tickMark(time, type) {
  const d = new Date(time * 1000);
  switch (type) {
    case LWC.TickMarkType.Year:
      return String(d.getUTCFullYear());
    case LWC.TickMarkType.Month:
      return `${MONTHS[d.getUTCMonth()]} ${d.getUTCFullYear()}`;
    case LWC.TickMarkType.DayOfMonth:
      return `${pad(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]}`;
    default:
      return `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
  }
}

/** Digits after the point once trailing zeros go: "61837.63000000" -> 2. */
function decimals(text) {
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.slice(dot + 1).replace(/0+$/, "").length;
}

/** A decimal string shown with exactly `places` digits, without a trip through binary floats. */
function fixed(text, places) {
  if (text == null) return "–";
  const [whole, frac = ""] = String(text).split(".");
  if (places === 0) return whole;
  return `${whole}.${(frac + "0".repeat(places)).slice(0, places)}`;
}

const trimmed = (text) => (text == null ? "–" : String(text).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, ""));

function percentChange(from, to) {
  if (!from) return "";
  const pct = ((to - from) / from) * 100;
  return `${pct >= 0 ? "+" : ""}${pct.toFixed(2)}%`;
}

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

function setChartAttributes(attrs) {
  for (const [name, value] of Object.entries(attrs)) ui.chart.dataset[name] = String(value);
}

const nextFrame = () => new Promise((resolve) => requestAnimationFrame(() => resolve()));

// ---- the chart ----------------------------------------------------------------------------------

function chartOptions(interval) {
  return {
    autoSize: true,
    layout: {
      background: { type: "solid", color: COLOR.bg },
      textColor: COLOR.text,
      fontFamily: MONO,
      fontSize: 11,
      panes: { separatorColor: COLOR.border, separatorHoverColor: "rgba(91, 156, 255, 0.15)", enableResize: true },
    },
    grid: { vertLines: { color: COLOR.grid }, horzLines: { color: COLOR.grid } },
    crosshair: {
      mode: LWC.CrosshairMode.Normal,
      vertLine: { color: COLOR.crosshair, labelBackgroundColor: COLOR.label },
      horzLine: { color: COLOR.crosshair, labelBackgroundColor: COLOR.label },
    },
    rightPriceScale: { borderColor: COLOR.border },
    timeScale: {
      borderColor: COLOR.border,
      timeVisible: interval !== "1d",
      secondsVisible: false,
      rightOffset: 2,
      maxBarSpacing: 40,
      tickMarkFormatter: tickMark,
    },
    localization: { timeFormatter: (time) => `${utcText(time, interval)} UTC` },
  };
}

function priceFormatFor(candles) {
  let places = 2;
  for (const c of candles) {
    for (const name of ["open", "high", "low", "close"]) {
      if (c[name] != null) places = Math.max(places, decimals(String(c[name])));
    }
  }
  places = Math.min(places, 8);
  return { type: "price", precision: places, minMove: 10 ** -places };
}

const hasPrices = (c) => c.open != null && c.high != null && c.low != null && c.close != null;

function candleBar(c) {
  if (!hasPrices(c)) return { time: c.time };
  const bar = { time: c.time, open: Number(c.open), high: Number(c.high), low: Number(c.low), close: Number(c.close) };
  if (c.complete === false) {
    Object.assign(bar, { color: COLOR.incomplete, borderColor: COLOR.incompleteEdge, wickColor: COLOR.incompleteEdge });
  }
  return bar;
}

function volumeBar(c) {
  if (c.volume == null) return { time: c.time };
  let color = Number(c.close) >= Number(c.open) ? COLOR.volUp : COLOR.volDown;
  if (c.complete === false) color = COLOR.volIncomplete;
  return { time: c.time, value: Number(c.volume), color };
}

function spreadPoint(c, stat) {
  const value = c.spread && c.spread.bps ? c.spread.bps[stat] : null;
  return value == null ? { time: c.time } : { time: c.time, value: Number(value) };
}

/** Alert markers on the candle each alert's minute falls in; alerts outside the drawn bars are left out. */
function alertMarkers(alerts, view) {
  const step = INTERVAL_SECONDS[view.interval];
  const markers = [];
  for (const alert of alerts) {
    const time = Math.floor(alert.time / step) * step;
    if (!view.candles.has(time)) continue;
    const subject = String(alert.subject || "");
    const up = /\bup\b|\brise|\bjump/i.test(subject);
    const down = /\bdown\b|\bfall|\bdrop/i.test(subject);
    const color = alert.kind === "cleared" ? COLOR.cleared : alert.severity === "critical" ? COLOR.critical : COLOR.warning;
    markers.push({
      time,
      position: down ? "aboveBar" : up ? "belowBar" : "aboveBar",
      shape: down ? "arrowDown" : up ? "arrowUp" : "circle",
      color,
      text: alert.kind === "reminder" ? `${alert.rule} (again)` : String(alert.rule),
      size: 1,
    });
  }
  return markers.sort((a, b) => a.time - b.time);
}

/** Enough decimals to tell the spreads apart: deep books have spreads well under 1 bps. */
function bpsFormat(candles) {
  const values = candles.map((c) => (c.spread && c.spread.bps ? Math.abs(Number(c.spread.bps.q3)) : NaN)).filter(Number.isFinite);
  const top = values.length ? Math.max(...values) : 1;
  const places = top >= 10 ? 1 : top >= 1 ? 2 : top >= 0.1 ? 3 : 4;
  return { type: "price", precision: places, minMove: 10 ** -places };
}

function addSpreadPane(view, candles) {
  view.bpsFormat = bpsFormat(candles);
  const line = { lastValueVisible: false, priceLineVisible: false, crosshairMarkerVisible: false, priceFormat: view.bpsFormat };
  view.spreadQ3 = view.chart.addSeries(LWC.LineSeries, { ...line, color: COLOR.spreadQuartile, lineWidth: 1, lineStyle: LWC.LineStyle.Dotted, pointMarkersVisible: true, pointMarkersRadius: 1.5 }, 1);
  view.spreadQ1 = view.chart.addSeries(LWC.LineSeries, { ...line, color: COLOR.spreadQuartile, lineWidth: 1, lineStyle: LWC.LineStyle.Dotted, pointMarkersVisible: true, pointMarkersRadius: 1.5 }, 1);
  view.spreadMedian = view.chart.addSeries(LWC.LineSeries, { ...line, color: COLOR.spread, lineWidth: 2, pointMarkersVisible: true, pointMarkersRadius: 2.5, crosshairMarkerVisible: true, lastValueVisible: true, title: "bps" }, 1);
  const [main, spread] = view.chart.panes();
  main.setStretchFactor(3);
  spread.setStretchFactor(1);
  LWC.createTextWatermark(spread, {
    horzAlign: "left",
    vertAlign: "top",
    lines: [{ text: "  SPREAD (bps of mid): median, q1–q3", color: "rgba(138, 147, 166, 0.75)", fontSize: 11, fontFamily: MONO }],
  });
}

/** A few bars sit centred at a readable width; many show the newest ~150, the rest a scroll away. */
function showRecent(chart, count) {
  const minimumSpan = 32;
  const recent = 150;
  if (count <= minimumSpan) {
    const middle = (count - 1) / 2;
    chart.timeScale().setVisibleLogicalRange({ from: middle - minimumSpan / 2, to: middle + minimumSpan / 2 });
  } else {
    chart.timeScale().setVisibleLogicalRange({ from: Math.max(0, count - recent), to: count + 2 });
  }
}

const watermarkSize = () => Math.round(Math.max(22, Math.min(56, ui.chart.clientWidth / 16)));

function createView(market, interval, body) {
  const chart = LWC.createChart(ui.chart, chartOptions(interval));
  const kind = body.kind;
  const candles = body.candles;
  const view = {
    market,
    interval,
    kind,
    chart,
    candles: new Map(), // time -> candle as the API gave it
    lastTime: null,
    alerts: [],
    volume: null,
    spreadMedian: null,
    spreadQ1: null,
    spreadQ3: null,
    bpsFormat: null,
    markers: null,
    markerCount: 0,
  };
  view.series = chart.addSeries(LWC.CandlestickSeries, {
    upColor: COLOR.up,
    downColor: COLOR.down,
    borderUpColor: COLOR.up,
    borderDownColor: COLOR.down,
    wickUpColor: COLOR.up,
    wickDownColor: COLOR.down,
    priceFormat: priceFormatFor(candles),
    priceLineColor: "#8a93a6",
  }, 0);
  view.series.priceScale().applyOptions({ scaleMargins: { top: 0.1, bottom: kind === "mid" ? 0.08 : 0.26 } });
  if (kind !== "mid") {
    view.volume = chart.addSeries(LWC.HistogramSeries, {
      priceFormat: { type: "volume" },
      priceScaleId: "volume",
      lastValueVisible: false,
      priceLineVisible: false,
    }, 0);
    view.volume.priceScale().applyOptions({ scaleMargins: { top: 0.8, bottom: 0 } });
  }
  if (candles.some((c) => c.spread)) addSpreadPane(view, candles);
  LWC.createTextWatermark(chart.panes()[0], {
    horzAlign: "center",
    vertAlign: "center",
    lines: [{ text: `${market} · ${interval}`, color: COLOR.watermark, fontSize: watermarkSize(), fontFamily: MONO, fontStyle: "bold" }],
  });
  view.markers = LWC.createSeriesMarkers(view.series, []);

  for (const c of candles) view.candles.set(c.time, c);
  view.series.setData(candles.map(candleBar));
  if (view.volume) view.volume.setData(candles.map(volumeBar));
  if (view.spreadMedian) {
    view.spreadMedian.setData(candles.map((c) => spreadPoint(c, "median")));
    view.spreadQ1.setData(candles.map((c) => spreadPoint(c, "q1")));
    view.spreadQ3.setData(candles.map((c) => spreadPoint(c, "q3")));
  }
  view.lastTime = candles.length ? candles[candles.length - 1].time : null;
  showRecent(chart, candles.length);
  chart.subscribeCrosshairMove((param) => {
    const candle = param.time !== undefined ? view.candles.get(param.time) : undefined;
    renderLegend(view, candle || latestCandle(view));
  });
  return view;
}

/** Apply candles from a poll: the last drawn bar may change, newer ones append. */
function applyCandles(view, candles) {
  let added = false;
  for (const c of candles) {
    if (view.lastTime !== null && c.time < view.lastTime) continue; // only the newest bar may change
    if (!view.candles.has(c.time)) added = true;
    if (c.spread && !view.spreadMedian) return "redraw"; // the spread pane appears
    view.candles.set(c.time, c);
    view.series.update(candleBar(c));
    if (view.volume) view.volume.update(volumeBar(c));
    if (view.spreadMedian) {
      view.spreadMedian.update(spreadPoint(c, "median"));
      view.spreadQ1.update(spreadPoint(c, "q1"));
      view.spreadQ3.update(spreadPoint(c, "q3"));
    }
    view.lastTime = c.time;
  }
  return added ? "added" : "same";
}

function drawnCounts(view) {
  let bars = 0;
  let spreadBars = 0;
  let incompleteBars = 0;
  for (const c of view.candles.values()) {
    if (hasPrices(c)) bars += 1;
    if (c.spread) spreadBars += 1;
    if (c.complete === false) incompleteBars += 1;
  }
  return { bars, spreadBars, incompleteBars };
}

function setMarkers(view) {
  const markers = alertMarkers(view.alerts, view);
  view.markers.setMarkers(markers);
  view.markerCount = markers.length;
}

function publish(view) {
  const { bars, spreadBars, incompleteBars } = drawnCounts(view);
  ui.empty.hidden = bars > 0;
  setChartAttributes({
    market: view.market,
    interval: view.interval,
    kind: view.kind,
    bars,
    spreadBars,
    incompleteBars,
    markers: view.markerCount,
    state: "ready",
  });
}

function latestCandle(view) {
  return view.lastTime === null ? undefined : view.candles.get(view.lastTime);
}

function renderLegend(view, candle) {
  ui.legendVolWrap.hidden = view.kind === "mid";
  ui.legendSpreadWrap.hidden = !view.spreadMedian;
  if (!candle || !hasPrices(candle)) {
    ui.legendTime.textContent = candle ? `${utcText(candle.time, view.interval)} UTC` : "";
    for (const el of [ui.legendO, ui.legendH, ui.legendL, ui.legendC, ui.legendV, ui.legendSpread]) el.textContent = "–";
    ui.legendDelta.textContent = "";
    ui.legendIncomplete.hidden = true;
    ui.legend.className = "legend";
    return;
  }
  const places = view.series.options().priceFormat.precision;
  const open = Number(candle.open);
  const close = Number(candle.close);
  const direction = close >= open ? "up" : "down";
  ui.legendTime.textContent = `${utcText(candle.time, view.interval)} UTC${view.kind === "mid" ? " · mid" : ""}`;
  ui.legendO.textContent = fixed(candle.open, places);
  ui.legendH.textContent = fixed(candle.high, places);
  ui.legendL.textContent = fixed(candle.low, places);
  ui.legendC.textContent = fixed(candle.close, places);
  ui.legendDelta.textContent = percentChange(open, close);
  ui.legendDelta.className = `legend-delta ${direction}`;
  ui.legendV.textContent = trimmed(candle.volume);
  const bps = candle.spread && candle.spread.bps;
  const bpsPlaces = view.bpsFormat ? view.bpsFormat.precision : 2;
  ui.legendSpread.textContent = bps && bps.median != null ? Number(bps.median).toFixed(bpsPlaces) : "–";
  ui.legendIncomplete.hidden = candle.complete !== false;
  ui.legend.className = `legend ${candle.complete === false ? "incomplete" : direction}`;
}

function renderQuote(view) {
  const candles = [...view.candles.values()].filter(hasPrices);
  const last = candles[candles.length - 1];
  ui.kindBadge.hidden = view.kind !== "mid";
  ui.kindBadge.textContent = "mid · spread only";
  ui.keyMid.hidden = view.kind !== "mid";
  ui.keySpread.hidden = !view.spreadMedian;
  if (!last) {
    ui.quoteLast.textContent = "–";
    ui.quoteChange.textContent = "";
    return;
  }
  const places = view.series.options().priceFormat.precision;
  const first = Number(candles[0].open);
  const close = Number(last.close);
  const direction = close >= first ? "up" : "down";
  ui.quoteLast.textContent = fixed(last.close, places);
  ui.quoteLast.className = `quote-last ${direction}`;
  ui.quoteChange.textContent = `${percentChange(first, close)} over ${candles.length} × ${view.interval}`;
  ui.quoteChange.className = `quote-change ${direction}`;
  document.title = `${fixed(last.close, places)} ${view.market} · candleflow`;
}

function renderAlerts(view) {
  ui.alerts.replaceChildren();
  ui.alertCount.textContent = String(view.alerts.length);
  ui.alertsEmpty.hidden = view.alerts.length > 0;
  const step = INTERVAL_SECONDS[view.interval];
  for (const alert of view.alerts) {
    const item = document.createElement("li");
    item.dataset.severity = alert.severity;
    item.dataset.kind = alert.kind;
    const sev = document.createElement("span");
    sev.className = "sev";
    const subject = document.createElement("span");
    subject.className = "subject";
    subject.textContent = alert.subject;
    const meta = document.createElement("span");
    meta.className = "meta";
    meta.textContent = `${utcText(alert.time, "1m")} · ${alert.kind} · ${alert.severity}`;
    item.append(sev, subject, meta);
    item.title = `${alert.rule}: ${alert.subject}`;
    item.tabIndex = 0;
    const focus = () => focusTime(view, Math.floor(alert.time / step) * step);
    item.addEventListener("click", focus);
    item.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        focus();
      }
    });
    ui.alerts.append(item);
  }
}

/** Bring the candle at `time` into view and put the crosshair (and so the legend) on it. */
function focusTime(view, time) {
  const times = [...view.candles.keys()];
  const index = times.indexOf(time);
  if (index < 0) return;
  const range = view.chart.timeScale().getVisibleLogicalRange();
  if (!range || index < range.from || index > range.to) {
    const span = range ? range.to - range.from : 60;
    view.chart.timeScale().setVisibleLogicalRange({ from: index - span * 0.6, to: index + span * 0.4 });
  }
  const candle = view.candles.get(time);
  // the new range applies on the next frame; the crosshair must be placed against it
  requestAnimationFrame(() => {
    if (page.view !== view) return;
    view.chart.setCrosshairPosition(Number(candle.high), time, view.series);
    renderLegend(view, candle);
  });
}

// ---- loading and polling ------------------------------------------------------------------------

function stopPolling() {
  clearTimeout(page.candleTimer);
  clearTimeout(page.alertTimer);
}

async function fetchAlerts(market) {
  const alerts = await getJson(alertsPath(market));
  return Array.isArray(alerts) ? alerts.filter((a) => a.symbol === undefined || a.symbol === market) : [];
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
  renderAlerts(view);
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
    renderAlerts(view);
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
