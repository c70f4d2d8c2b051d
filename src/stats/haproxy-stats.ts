// Reads `show info` and `show stat` from a load balancer's workers through
// its master CLI and turns them into typed rows. Columns are found by their
// header name, never by position: haproxy versions add and move columns.
import { masterCommand } from "../haproxy/master-cli.js";
import { DomainError } from "../errors.js";
import { zeroCounters, type Counters } from "./model.js";

export type StatRow = Record<string, string>;

/** One CSV line as haproxy writes it (fields with commas or quotes are quoted). */
function splitCsv(line: string): string[] {
  if (!line.includes('"')) return line.split(",");
  const out: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quoted) {
      if (c === '"' && line[i + 1] === '"') { cur += '"'; i++; }
      else if (c === '"') quoted = false;
      else cur += c;
    } else if (c === '"') quoted = true;
    else if (c === ",") { out.push(cur); cur = ""; }
    else cur += c;
  }
  out.push(cur);
  return out;
}

/** Parses `show stat` CSV into rows keyed by header name. */
export function parseShowStat(text: string): StatRow[] {
  const lines = text.split("\n");
  const headerLine = lines.findIndex((l) => l.startsWith("# "));
  if (headerLine < 0) throw new DomainError("unavailable", "haproxy answered show stat without a header line", text.slice(0, 200));
  const header = splitCsv(lines[headerLine]!.slice(2));
  const rows: StatRow[] = [];
  for (let i = headerLine + 1; i < lines.length; i++) {
    const line = lines[i]!;
    if (!line || line.startsWith("#")) continue;
    const fields = splitCsv(line);
    const row: StatRow = {};
    for (let j = 0; j < header.length; j++) {
      const name = header[j]!;
      if (name && name !== "-") row[name] = fields[j] ?? "";
    }
    rows.push(row);
  }
  return rows;
}

/** Parses `show info` ("Name: value" lines). */
export function parseShowInfo(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out.set(line.slice(0, i).trim(), line.slice(i + 1).trim());
  }
  return out;
}

export function num(row: StatRow, name: string): number {
  const v = row[name];
  if (!v) return 0;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

export function rowCounters(row: StatRow): Counters {
  const c = zeroCounters();
  c.totalSessions = num(row, "stot");
  c.bytesIn = num(row, "bin");
  c.bytesOut = num(row, "bout");
  c.requestErrors = num(row, "ereq");
  c.connectionErrors = num(row, "econ");
  c.responseErrors = num(row, "eresp");
  c.http1xx = num(row, "hrsp_1xx");
  c.http2xx = num(row, "hrsp_2xx");
  c.http3xx = num(row, "hrsp_3xx");
  c.http4xx = num(row, "hrsp_4xx");
  c.http5xx = num(row, "hrsp_5xx");
  c.httpOther = num(row, "hrsp_other");
  c.requests = num(row, "req_tot");
  return c;
}

export interface RawLbStats {
  /** OS pid of the worker that answered: a new one means a reload. */
  workerPid: string;
  uptimeSec: number;
  currentConnections: number;
  rows: StatRow[];
}

/** One poll of a load balancer: `@1 show info` then `@1 show stat`. */
export async function readRawStats(masterSocket: string, timeoutMs = 5000): Promise<RawLbStats> {
  const info = parseShowInfo(await masterCommand(masterSocket, "@1 show info", timeoutMs));
  const workerPid = info.get("Pid");
  if (!workerPid) throw new DomainError("unavailable", "haproxy show info has no Pid (no worker answered)", masterSocket);
  const rows = parseShowStat(await masterCommand(masterSocket, "@1 show stat", timeoutMs));
  return {
    workerPid,
    uptimeSec: Number(info.get("Uptime_sec") ?? 0) || 0,
    currentConnections: Number(info.get("CurrConns") ?? 0) || 0,
    rows,
  };
}
