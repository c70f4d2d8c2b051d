// What a validator (`haproxy -c`, `keepalived -t`) said, made fit to return
// to the caller who uploaded the configuration:
// - only about the caller's own upload: a line that names any other file is
//   withheld, because validators quote what they read. haproxy's ACL loader
//   prints a pattern file's lines ("'root:x:0:0:...' is not a valid IPv4
//   address at line 1 of file '/etc/shadow'"), keepalived complained about
//   every line of an included file, the agent's own private key included.
//   The line keeps its place and the path it names (the caller wrote that
//   path), never the rest. Paths that do not exist are harmless (a URL path
//   in a message); relative ones are resolved against the agent's folder;
// - bounded: at most MAX_LINES lines of at most MAX_LINE_CHARS characters
//   (keepalived repeats a complaint for every line of a 1 MiB upload);
// - the scratch file's name replaced by the name the caller knows.
// One pass over the text; no regular expression sees it.
import { existsSync } from "node:fs";
import { resolve } from "node:path";

export interface OutputScope {
  /** Files the caller provided, exactly as the validator names them, with the name to show instead. */
  own: { path: string; shownAs: string }[];
  /** Folders whose files the caller provided (a load balancer's certificate folder). */
  ownDirs?: string[];
  /** Collapse repeated lines (keepalived parses twice and says everything twice). */
  dedupe?: boolean;
}

export const MAX_LINES = 200;
export const MAX_LINE_CHARS = 600;

/** Characters that separate the words of a message (a quoted path ends at its quote). */
const SEPARATORS = new Set([" ", "\t", "'", '"', "`", "[", "]", "(", ")", ",", ":", ";", "=", "<", ">"]);

/** The words of a line that contain a "/" (paths, absolute or relative), in order. */
function pathsIn(line: string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < line.length) {
    while (i < line.length && SEPARATORS.has(line[i]!)) i++;
    let j = i;
    let slash = false;
    while (j < line.length && !SEPARATORS.has(line[j]!)) {
      if (line[j] === "/") slash = true;
      j++;
    }
    if (slash) out.push(line.slice(i, j));
    i = j;
  }
  return out;
}

/**
 * Whether a path is one the caller provided. Any other path that exists is
 * foreign (its content may be quoted); one that does not exist cannot leak
 * anything (a URL path in a message, a missing file the caller named).
 */
function isOwn(path: string, scope: OutputScope): boolean {
  if (scope.own.some((o) => o.path === path)) return true;
  if (!existsSync(resolve(path))) return true;
  if (path.split("/").includes("..")) return false;
  return (scope.ownDirs ?? []).some((d) => path.startsWith(d.endsWith("/") ? d : d + "/"));
}

/** A validator's own line-start tags: a line without one continues the line before it. */
function startsMessage(line: string): boolean {
  const t = line.trimStart();
  return t.startsWith("[") || t.startsWith("(") || t.startsWith("Configuration file") || t === "";
}

function replaceAll(text: string, from: string, to: string): string {
  return from ? text.split(from).join(to) : text;
}

/** Where the part of `line` that locates the message ends: after "[file:N]" / "(file: Line N)" of an own file, or its tag. */
function keptPrefix(line: string, scope: OutputScope): string {
  let end = 0;
  for (const { path } of scope.own) {
    const at = line.indexOf(path);
    if (at < 0) continue;
    const close = line.slice(at).search(/[\])]/);
    if (close >= 0 && close < path.length + 24) end = Math.max(end, at + close + 1);
  }
  if (!end) {
    const tag = line.indexOf("]");
    end = line.startsWith("[") && tag > 0 && tag < 40 ? tag + 1 : 0;
  }
  return line.slice(0, end);
}

/** The output, limited to the caller's own files and to MAX_LINES lines. */
export function describeOwnUpload(output: string, scope: OutputScope): string {
  const lines: string[] = [];
  const seen = new Set<string>();
  let withholding = false;
  let dropped = 0;
  let start = 0;
  while (start <= output.length) {
    let end = output.indexOf("\n", start);
    if (end < 0) end = output.length;
    let line = output.slice(start, end).trimEnd();
    start = end + 1;
    if (!line.trim()) continue;
    if (line.length > 4 * MAX_LINE_CHARS) line = line.slice(0, 4 * MAX_LINE_CHARS);
    if (lines.length >= MAX_LINES) {
      dropped++;
      continue;
    }
    // More paths than any real message names: withheld without looking (bounded work).
    const paths = pathsIn(line);
    const foreign = paths.length > 16 ? paths[16]! : paths.find((p) => !isOwn(p, scope));
    if (foreign) {
      withholding = true;
      line = `${keptPrefix(line, scope)} (message withheld: it concerns ${foreign.slice(0, 200)}, a file this upload did not provide)`.trimStart();
    } else if (withholding && !startsMessage(line)) {
      // A continuation of a withheld message (a multi-line quote of the file).
      continue;
    } else {
      withholding = false;
    }
    for (const o of scope.own) line = replaceAll(line, o.path, o.shownAs);
    if (line.length > MAX_LINE_CHARS) line = `${line.slice(0, MAX_LINE_CHARS)}... (${line.length - MAX_LINE_CHARS} more characters)`;
    if (scope.dedupe) {
      const key = line.trim();
      if (seen.has(key)) continue;
      seen.add(key);
    }
    lines.push(line);
  }
  if (dropped) lines.push(`... ${dropped} more lines`);
  return lines.join("\n");
}
