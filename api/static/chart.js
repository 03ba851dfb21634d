// The chart: one "view" per market and interval, holding the chart, its series (candles, volume,
// spread pane), the candles as the API gave them and the alert markers; plus the legend it drives.

import { COLOR, INTERVAL_SECONDS, LWC, MONO } from "./config.js";
import { ui, setChartAttributes } from "./dom.js";
import { decimals, fixed, percentChange, tickMark, trimmed, utcText } from "./format.js";

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

export const hasPrices = (c) => c.open != null && c.high != null && c.low != null && c.close != null;

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

export function createView(market, interval, body) {
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
export function applyCandles(view, candles) {
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

export function setMarkers(view) {
  const markers = alertMarkers(view.alerts, view);
  view.markers.setMarkers(markers);
  view.markerCount = markers.length;
}

export function publish(view) {
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

export function latestCandle(view) {
  return view.lastTime === null ? undefined : view.candles.get(view.lastTime);
}

export function renderLegend(view, candle) {
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
