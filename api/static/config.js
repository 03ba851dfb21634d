// What the dashboard's modules share: the chart library, intervals, limits, poll periods, colours.

/** The vendored Lightweight Charts (api/static/vendor); index.html loads it before the modules. */
export const LWC = window.LightweightCharts;

export const INTERVALS = ["1m", "1h", "1d"];
export const INTERVAL_SECONDS = { "1m": 60, "1h": 3600, "1d": 86400 };
export const CANDLE_LIMIT = 1000; // the API's maximum
export const POLL_CANDLES_MS = 5000;
export const POLL_ALERTS_MS = 15000;
export const POLL_HEALTH_MS = 15000;
export const ALERT_LIMIT = 50;

export const COLOR = {
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
export const MONO = 'ui-monospace, "SFMono-Regular", Menlo, Consolas, "DejaVu Sans Mono", monospace';
