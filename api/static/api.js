// This server's JSON API: fetching with errors a person can read, request paths, the market list.

import { ALERT_LIMIT, CANDLE_LIMIT, INTERVALS } from "./config.js";

export class ApiError extends Error {
  constructor(path, status, detail, retryAfterSeconds) {
    const where = path.split("?")[0];
    super(status ? `${where}: HTTP ${status}${detail ? ` (${detail})` : ""}` : `${where}: ${detail}`);
    this.status = status;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

export async function getJson(path) {
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

export function candlesPath(market, interval, startMs) {
  const params = new URLSearchParams({ interval, limit: String(CANDLE_LIMIT) });
  if (startMs !== undefined) params.set("start", String(startMs));
  return `candles/${encodeURIComponent(market)}?${params}`;
}

function alertsPath(market) {
  return `alerts?${new URLSearchParams({ market, limit: String(ALERT_LIMIT) })}`;
}

/** "BTCUSDT_1m" ... -> Map market -> Set of intervals, in the server's order. */
export function parseMarkets(ids) {
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
export const isSpreadOnly = (market) => market.includes("-");

export async function fetchAlerts(market) {
  const alerts = await getJson(alertsPath(market));
  return Array.isArray(alerts) ? alerts.filter((a) => a.symbol === undefined || a.symbol === market) : [];
}
