// Reads `show info` and `show stat` from a load balancer's workers through
// its master CLI and turns them into typed rows. Columns are found by their
// header name, never by position: haproxy versions add and move columns.
import { AnswerBuffer, masterCommand, masterCommandInto } from "../haproxy/master-cli.js";
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
 * `show stat` as the bytes haproxy sent, where each data line lies in them,
 * and where each used column is. A line becomes a string, and is split,
 * only when read (rowAt): the accumulator compares a line's bytes with its
 * previous poll's (see LineMemo) and skips lines that did not change. Not
 * one string for the whole answer: ~4 MB for a big load balancer, which V8
 * puts straight into its old generation at every poll, and which made the
 * old generation fill (and be marked) every two or three polls.
 */
export interface StatTable {
  columns: Columns;
  /** The header line as sent (another header: columns may have moved). */
  header: string;
  /** The answer. */
  data: Buffer;
  /** Data line i is data[starts[i], ends[i]) (comments and empty lines left out). */
  starts: number[];
  ends: number[];
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

const NL = 10;
const HASH = 35;
const QUOTE = 34;

export function parseShowStat(input: Buffer | string): StatTable {
  const data = typeof input === "string" ? Buffer.from(input, "utf8") : input;
  // The header: "# pxname,..." at the start or at the start of a line.
  let start = data[0] === HASH && data[1] === 32 ? 0 : -1;
  if (start < 0) {
    const nl = data.indexOf("\n# ");
    start = nl >= 0 ? nl + 1 : -1;
  }
  if (start < 0) throw new DomainError("unavailable", "haproxy answered show stat without a header line", data.toString("utf8", 0, 200));
  const headerEnd = data.indexOf(NL, start);
  const headerLine = data.toString("utf8", start + 2, headerEnd < 0 ? data.length : headerEnd);
  const header = splitCsv(headerLine);
  const columns = {} as Columns;
  let last = -1;
  for (const name of USED_COLUMNS) {
    columns[name] = header.indexOf(name);
    last = Math.max(last, columns[name]);
  }
  const starts: number[] = [];
  const ends: number[] = [];
  const quoted = new Set<number>();
  let pos = headerEnd < 0 ? data.length : headerEnd + 1;
  // Next quote in the answer (searched again only once passed): lines with
  // quoted fields are marked for the exact split.
  let quote = data.indexOf(QUOTE, pos);
  while (pos < data.length) {
    let end = data.indexOf(NL, pos);
    if (end < 0) end = data.length;
    if (quote >= 0 && quote < pos) quote = data.indexOf(QUOTE, pos);
    if (end > pos && data[pos] !== HASH) {
      if (quote >= 0 && quote < end) quoted.add(starts.length);
      starts.push(pos);
      ends.push(end);
    }
    pos = end + 1;
  }
  return { columns, header: headerLine, data, starts, ends, quoted, width: last + 1 };
}

/** Data line i as text. */
export function lineAt(t: StatTable, i: number): string {
  return t.data.toString("utf8", t.starts[i], t.ends[i]);
}

/** The fields of data line i (a native split that stops after the last used column). */
export function rowAt(t: StatTable, i: number): string[] {
  const line = lineAt(t, i);
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

/**
 * One poll of a load balancer: `@1 show info` then `@1 show stat`, the
 * latter read into `into` (the table is then valid until the next read
 * into it; a caller that polls again keeps one, see StatsCollector).
 */
export async function readRawStats(masterSocket: string, timeoutMs = 5000, into = new AnswerBuffer()): Promise<RawLbStats> {
  const info = parseShowInfo(await masterCommand(masterSocket, "@1 show info", timeoutMs));
  const workerPid = info.get("Pid");
  if (!workerPid) throw new DomainError("unavailable", "haproxy show info has no Pid (no worker answered)", masterSocket);
  const data = await masterCommandInto(masterSocket, "@1 show stat", into, timeoutMs);
  // The data is what haproxy said by now; parsing it is the agent's time.
  const readAt = new Date();
  return {
    workerPid,
    uptimeSec: Number(info.get("Uptime_sec") ?? 0) || 0,
    currentConnections: Number(info.get("CurrConns") ?? 0) || 0,
    table: parseShowStat(data),
    readAt,
  };
}
