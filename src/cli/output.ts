// Rendering for humans (aligned tables, key/value blocks, status colours)
// and for scripts (JSON in the Protobuf JSON mapping: int64 as strings).
import { toJson, type DescMessage, type MessageShape } from "@bufbuild/protobuf";

export interface Style {
  color: boolean;
}

const ANSI = { red: 31, green: 32, yellow: 33, blue: 34, dim: 2, bold: 1 } as const;
export type Tint = keyof typeof ANSI;

export function paint(s: string, tint: Tint | undefined, st: Style): string {
  return st.color && tint ? `\x1b[${ANSI[tint]}m${s}\x1b[0m` : s;
}

/** The colour of a status word wherever it appears (listener, member, pool, process). */
export function statusTint(status: string): Tint | undefined {
  const s = status.toUpperCase();
  if (["ACTIVE", "OPEN", "UP", "RUNNING", "OK", "ALLOCATED", "MASTER"].includes(s)) return "green";
  if (["ERROR", "DOWN", "FAILED", "FULL"].includes(s)) return "red";
  if (["MAINT", "DRAIN", "STOPPED", "TOPOLOGY-CHANGE", "NOLB", "PARTIAL"].includes(s)) return "yellow";
  if (["NO_CHECK", "NO CHECK", "UNKNOWN", ""].includes(s)) return "dim";
  return undefined;
}

// Width of what a terminal shows: ANSI colour sequences take no room.
const visible = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, "").length;

/**
 * The line cut to `width` visible columns, ending in "…" when cut; colour
 * sequences are kept (and a reset added) so a cut never leaks colour.
 * A live table wider than the terminal would wrap and scroll on every redraw.
 */
export function clipToWidth(line: string, width: number): string {
  if (width <= 0 || visible(line) <= width) return line;
  let out = "";
  let shown = 0;
  let coloured = false;
  for (let i = 0; i < line.length && shown < width - 1; ) {
    const esc = /^\x1b\[[0-9;]*m/.exec(line.slice(i));
    if (esc) {
      out += esc[0];
      coloured = esc[0] !== "\x1b[0m";
      i += esc[0].length;
      continue;
    }
    out += line[i++];
    shown++;
  }
  return out + (coloured ? "\x1b[0m" : "") + "…";
}

/** Columns padded to the widest cell; numbers right-aligned. */
export function table(headers: string[], rows: string[][], st: Style, rightAligned: number[] = []): string {
  if (!rows.length) return "";
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => visible(r[i] ?? ""))));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => {
        const pad = " ".repeat(Math.max(0, widths[i]! - visible(c)));
        return rightAligned.includes(i) ? pad + c : i === cells.length - 1 ? c : c + pad;
      })
      .join("  ")
      .trimEnd();
  return [paint(line(headers), "bold", st), ...rows.map(line)].join("\n") + "\n";
}

/** "key: value" lines of a JSON object, nested objects indented. */
export function keyValues(obj: unknown, st: Style, indent = ""): string {
  if (obj === null || typeof obj !== "object") return `${indent}${String(obj)}\n`;
  const entries = Object.entries(obj as Record<string, unknown>);
  if (!entries.length) return "";
  const w = Math.max(...entries.map(([k]) => k.length));
  let out = "";
  for (const [k, v] of entries) {
    const label = paint(`${k}:`.padEnd(w + 1), "bold", st);
    if (Array.isArray(v)) {
      if (!v.length) out += `${indent}${label} -\n`;
      else if (v.every((x) => typeof x !== "object")) out += `${indent}${label} ${v.join(", ")}\n`;
      else {
        out += `${indent}${label}\n`;
        for (const x of v) {
          const lines = keyValues(x, st).trimEnd().split("\n");
          out += lines.map((l, i) => `${indent}${i ? "    " : "  - "}${l}`).join("\n") + "\n";
        }
      }
    } else if (v && typeof v === "object") {
      out += Object.keys(v).length ? `${indent}${label}\n${keyValues(v, st, indent + "  ")}` : `${indent}${label} -\n`;
    } else {
      // A program's multi-line output (haproxy's ALERT lines) stays under its key.
      const s = String(v).trimEnd().replace(/\n/g, `\n${indent}${" ".repeat(w + 2)}`);
      const tint = /status|state|role/i.test(k) ? statusTint(s) : undefined;
      out += `${indent}${label} ${paint(s, tint, st)}\n`;
    }
  }
  return out;
}

/** A message in the Protobuf JSON mapping with every field present, for scripts. */
export function messageJson<D extends DescMessage>(schema: D, msg: MessageShape<D>): unknown {
  return toJson(schema, msg, { alwaysEmitImplicit: true, useProtoFieldName: true });
}

/** JSON.stringify that writes bigints as strings, as the Protobuf JSON mapping does. */
export function stringifyJson(v: unknown): string {
  return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? x.toString() : x), 2);
}

export function formatBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${i ? n.toFixed(1) : n.toFixed(0)}${units[i]}`;
}

/** Milliseconds as a short duration: "850 ms", "4.2 s", "3m20s", "2h05m", "3d04h". */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return "-";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.floor(s)} s`;
  const two = (n: number) => String(n).padStart(2, "0");
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${two(Math.floor(s % 60))}s`;
  const h = Math.floor(m / 60);
  if (h < 24) return `${h}h${two(m % 60)}m`;
  return `${Math.floor(h / 24)}d${two(h % 24)}h`;
}

/** A Unix time in ms as its age: "3m20s ago"; 0 (never) as "-". */
export function formatAge(atMs: number, now = Date.now()): string {
  if (!atMs) return "-";
  return atMs > now ? `in ${formatDuration(atMs - now)}` : `${formatDuration(now - atMs)} ago`;
}

/**
 * The first line of a text that may hold a program's multi-line output,
 * marked when there was more: a table row must stay one line.
 */
export function firstLine(s: string): string {
  const lines = s.trim().split(/\r?\n/);
  return lines.length > 1 ? `${lines[0]!.trimEnd()} (+${lines.length - 1} lines)` : lines[0]!;
}

/**
 * A copy of a JSON object (in the Protobuf JSON mapping) with the values of
 * the named fields made readable for `keyValues`: times as ages, durations,
 * sizes with units. `rule` gets the field name and the value and returns the
 * text, or undefined to keep the value. Arrays and nested objects are walked.
 */
export function humanize(v: unknown, rule: (key: string, value: unknown) => string | undefined): unknown {
  if (Array.isArray(v)) return v.map((x) => humanize(x, rule));
  if (!v || typeof v !== "object") return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
    const h = x !== null && typeof x !== "object" ? rule(k, x) : undefined;
    out[k] = h ?? humanize(x, rule);
  }
  return out;
}

/** The rules most views share: `*_at_ms` as ages, `*_ms` and `*_seconds` as durations. */
export function timeRule(key: string, value: unknown): string | undefined {
  const n = Number(value);
  if (!Number.isFinite(n)) return undefined;
  if (key.endsWith("_at_ms")) return formatAge(n);
  if (key.endsWith("_ms")) return formatDuration(n);
  if (key.endsWith("_seconds")) return n ? formatDuration(n * 1000) : "0 s";
  return undefined;
}

export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return "-";
  return perSecond >= 100 ? perSecond.toFixed(0) : perSecond.toFixed(1);
}
