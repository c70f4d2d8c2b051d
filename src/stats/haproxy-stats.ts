// Reads `show info` and `show stat` from a load balancer's workers through
// its master CLI and turns them into typed rows. Columns are found by their
// header name, never by position: haproxy versions add and move columns.
import { masterCommand } from "../haproxy/master-cli.js";
import { DomainError } from "../errors.js";
import type { Counters } from "./model.js";

/** The columns the agent reads (a big config's other ~165 are skipped). */
export const USED_COLUMNS = [
  "pxname", "svname", "type", "status", "weight", "scur", "smax", "slim", "stot", "bin", "bout", "ereq", "econ", "eresp",
  "hrsp_1xx", "hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other", "req_tot", "check_status", "chkfail", "lastchg",
] as const;

/** Index of each used column in this answer's rows (-1: haproxy did not send it). */
export type Columns = Record<(typeof USED_COLUMNS)[number], number>;

/**
 * `show stat` as unsplit data lines plus where each used column is. Lines
 * are split only when read (rowAt): the accumulator skips lines that did
 * not change since its previous poll, and splitting 11,000 lines into
 * ~50 strings each was most of a big load balancer's garbage per poll.
 */
export interface StatTable {
  columns: Columns;
  /** The header line as sent (another header: columns may have moved). */
  header: string;
  /** Data lines (comments and empty lines left out). */
  lines: string[];
  /** Indexes of lines holding a quoted field: split the exact way, never compared raw. */
  quoted: Set<number>;
  /** Fields kept when splitting: up to the last used column. */
  width: number;
}

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

export function parseShowStat(text: string): StatTable {
  const nl = text.indexOf("\n# ");
  const start = text.startsWith("# ") ? 0 : nl >= 0 ? nl + 1 : -1;
  if (start < 0) throw new DomainError("unavailable", "haproxy answered show stat without a header line", text.slice(0, 200));
  const headerEnd = text.indexOf("\n", start);
  const headerLine = text.slice(start + 2, headerEnd < 0 ? undefined : headerEnd);
  const header = splitCsv(headerLine);
  const columns = {} as Columns;
  let last = -1;
  for (const name of USED_COLUMNS) {
    columns[name] = header.indexOf(name);
    last = Math.max(last, columns[name]);
  }
  const lines: string[] = [];
  const quoted = new Set<number>();
  let pos = headerEnd < 0 ? text.length : headerEnd + 1;
  // Next quote in the text (searched again only once passed): lines with
  // quoted fields are marked for the exact split.
  let quote = text.indexOf('"', pos);
  while (pos < text.length) {
    let end = text.indexOf("\n", pos);
    if (end < 0) end = text.length;
    if (quote >= 0 && quote < pos) quote = text.indexOf('"', pos);
    if (end > pos && text.charCodeAt(pos) !== 35 /* # */) {
      if (quote >= 0 && quote < end) quoted.add(lines.length);
      lines.push(text.slice(pos, end));
    }
    pos = end + 1;
  }
  return { columns, header: headerLine, lines, quoted, width: last + 1 };
}

/** The fields of data line i (a native split that stops after the last used column). */
export function rowAt(t: StatTable, i: number): string[] {
  const line = t.lines[i]!;
  return t.quoted.has(i) ? splitCsv(line) : line.split(",", t.width);
}

/** The field at a column index ("" when absent). */
export function cell(row: string[], i: number): string {
  return i >= 0 ? (row[i] ?? "") : "";
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

export function num(row: string[], i: number): number {
  const v = i >= 0 ? row[i] : undefined;
  if (!v) return 0;
  const n = Number(v);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

export function rowCounters(row: string[], c: Columns): Counters {
  return {
    totalSessions: num(row, c.stot),
    bytesIn: num(row, c.bin),
    bytesOut: num(row, c.bout),
    requestErrors: num(row, c.ereq),
    connectionErrors: num(row, c.econ),
    responseErrors: num(row, c.eresp),
    http1xx: num(row, c.hrsp_1xx),
    http2xx: num(row, c.hrsp_2xx),
    http3xx: num(row, c.hrsp_3xx),
    http4xx: num(row, c.hrsp_4xx),
    http5xx: num(row, c.hrsp_5xx),
    httpOther: num(row, c.hrsp_other),
    requests: num(row, c.req_tot),
  };
}

export interface RawLbStats {
  /** OS pid of the worker that answered: a new one means a reload. */
  workerPid: string;
  uptimeSec: number;
  currentConnections: number;
  table: StatTable;
  /** When the answer had arrived, before parsing (absent: when the reader returned). */
  readAt?: Date;
}

/** One poll of a load balancer: `@1 show info` then `@1 show stat`. */
export async function readRawStats(masterSocket: string, timeoutMs = 5000): Promise<RawLbStats> {
  const info = parseShowInfo(await masterCommand(masterSocket, "@1 show info", timeoutMs));
  const workerPid = info.get("Pid");
  if (!workerPid) throw new DomainError("unavailable", "haproxy show info has no Pid (no worker answered)", masterSocket);
  const text = await masterCommand(masterSocket, "@1 show stat", timeoutMs);
  // The data is what haproxy said by now; parsing it is the agent's time.
  const readAt = new Date();
  return {
    workerPid,
    uptimeSec: Number(info.get("Uptime_sec") ?? 0) || 0,
    currentConnections: Number(info.get("CurrConns") ?? 0) || 0,
    table: parseShowStat(text),
    readAt,
  };
}
