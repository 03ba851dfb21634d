// The page's elements (ids from index.html), and the data attributes the browser test reads
// on #chart.

import { INTERVALS } from "./config.js";

const $ = (id) => document.getElementById(id);
export const ui = {
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

export function setChartAttributes(attrs) {
  for (const [name, value] of Object.entries(attrs)) ui.chart.dataset[name] = String(value);
}
