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

/** The columns the agent reads (big configs: skip the other ~90). */
export const USED_COLUMNS = [
  "pxname", "svname", "type", "status", "weight", "scur", "smax", "slim", "stot", "bin", "bout", "ereq", "econ", "eresp",
  "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other", "req_tot", "check_status", "chkfail", "lastchg",
];

/** Parses `show stat` CSV into rows keyed by header name (only `columns`, if given). */
export function parseShowStat(text: string, columns?: readonly string[]): StatRow[] {
  const nl = text.indexOf("\n# ");
  const start = text.startsWith("# ") ? 0 : nl >= 0 ? nl + 1 : -1;
  if (start < 0) throw new DomainError("unavailable", "haproxy answered show stat without a header line", text.slice(0, 200));
  const headerEnd = text.indexOf("\n", start);
  const wanted = columns ? new Set(columns) : undefined;
  const header = splitCsv(text.slice(start + 2, headerEnd < 0 ? undefined : headerEnd))
    .map((n) => (n === "-" || (wanted && !wanted.has(n)) ? "" : n));
  // Only the fields up to the last wanted column are split out: a big
  // config has ~11,000 lines of ~190 fields each.
  const idx: number[] = [];
  header.forEach((n, i) => n && idx.push(i));
  const last = idx.length ? idx[idx.length - 1]! : -1;
  const rows: StatRow[] = [];
  let pos = headerEnd < 0 ? text.length : headerEnd + 1;
  while (pos < text.length) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    if (end > pos && text.charCodeAt(pos) !== 35 /* # */) {
      const line = text.slice(pos, end);
      let fields: string[];
      if (line.includes('"')) fields = splitCsv(line);
      else {
        fields = [];
        let p = 0;
        for (let i = 0; i <= last; i++) {
          const c = line.indexOf(",", p);
          if (c < 0) {
            fields.push(line.slice(p));
            break;
          }
          fields.push(line.slice(p, c));
          p = c + 1;
        }
      }
      const row: StatRow = {};
      for (const j of idx) row[header[j]!] = fields[j] ?? "";
      rows.push(row);
    }
    pos = end + 1;
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
  const rows = parseShowStat(await masterCommand(masterSocket, "@1 show stat", timeoutMs), USED_COLUMNS);
  return {
    workerPid,
    uptimeSec: Number(info.get("Uptime_sec") ?? 0) || 0,
    currentConnections: Number(info.get("CurrConns") ?? 0) || 0,
    rows,
  };
}
