// The text around the chart: the quote in the top bar and the alert list beside the chart.

import { INTERVAL_SECONDS } from "./config.js";
import { ui } from "./dom.js";
import { fixed, percentChange, utcText } from "./format.js";
import { hasPrices, renderLegend } from "./chart.js";

export function renderQuote(view) {
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

/** The alert list; picking an alert focuses its candle while `isCurrent(view)` still holds. */
export function renderAlerts(view, isCurrent) {
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
    const focus = () => focusTime(view, Math.floor(alert.time / step) * step, isCurrent);
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
function focusTime(view, time, isCurrent) {
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
    if (!isCurrent(view)) return;
    view.chart.setCrosshairPosition(Number(candle.high), time, view.series);
    renderLegend(view, candle);
  });
}
