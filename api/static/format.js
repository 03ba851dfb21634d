// Text for times and prices: UTC only, and decimal strings kept exact (never via binary floats).

import { LWC } from "./config.js";

const pad = (n) => String(n).padStart(2, "0");
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

export function utcText(seconds, interval) {
  const d = new Date(seconds * 1000);
  const day = `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}`;
  return interval === "1d" ? day : `${day} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}`;
}

/** Time-axis labels in UTC (the chart's times are UTC seconds; never the browser's zone). */
export function tickMark(time, type) {
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
export function decimals(text) {
  const dot = text.indexOf(".");
  return dot < 0 ? 0 : text.slice(dot + 1).replace(/0+$/, "").length;
}

/** A decimal string shown with exactly `places` digits, without a trip through binary floats. */
export function fixed(text, places) {
  if (text == null) return "–";
  const [whole, frac = ""] = String(text).split(".");
  if (places === 0) return whole;
  return `${whole}.${(frac + "0".repeat(places)).slice(0, places)}`;
}

export const trimmed = (text) => (text == null ? "–" : String(text).replace(/(\.\d*?)0+$/, "$1").replace(/\.$/, ""));

export function percentChange(from, to) {
  if (!from) return "";
  const pct = ((to - from) / from) * 100;
  return `${pct >= 0 ? "+" : ""}${pct.toFixed(2)}%`;
}
