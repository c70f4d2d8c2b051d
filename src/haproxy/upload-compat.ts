// What an uploaded haproxy config is changed into before it is checked and
// stored, as Octavia's agent does (so a controller may rely on it):
// `group` lines of the `global` section are removed. Older controllers
// rendered one; the agent's user/group file (user-group.ts) now supplies the
// group, and haproxy refuses a second one.
//
// Octavia's agent removes every "<whitespace>group <rest of line>" anywhere
// in the file, which also cuts `group` out of userlist sections and the
// rest of any line holding the word; only lines whose keyword is `group`
// inside `global` are removed here.

import { Pacer } from "../system/pacer.js";

/** Section keywords of haproxy's configuration language (a line whose first word is one opens a section). */
const SECTIONS = new Set([
  "global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist",
  "mailers", "program", "http-errors", "ring", "cache", "fcgi-app", "crt-store", "traces",
]);

/**
 * One pass over the lines (no regular expression, no array of every line):
 * an 8 MiB upload of short lines took ~90 ms in one piece, so the pass
 * yields the event loop between slices (Pacer).
 */
export async function rewriteUpload(text: string): Promise<string> {
  const pace = new Pacer();
  let inGlobal = false;
  const drop: [number, number][] = [];
  let start = 0;
  let n = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    if ((++n & 1023) === 0) await pace.step();
    // The line's first word.
    let i = start;
    while (i < end && (text.charCodeAt(i) === 32 || text.charCodeAt(i) === 9 || text.charCodeAt(i) === 13)) i++;
    let j = i;
    while (j < end && text.charCodeAt(j) !== 32 && text.charCodeAt(j) !== 9 && text.charCodeAt(j) !== 13) j++;
    const keyword = j > i && j - i <= 16 ? text.slice(i, j) : "";
    // haproxy opens a section on its keyword wherever the line is indented.
    if (keyword && SECTIONS.has(keyword)) inGlobal = keyword === "global";
    if (inGlobal && keyword === "group") drop.push([start, Math.min(end + 1, text.length)]);
    start = end + 1;
  }
  if (!drop.length) return text;
  const out: string[] = [];
  let from = 0;
  for (const [a, b] of drop) {
    out.push(text.slice(from, a));
    from = b;
  }
  out.push(text.slice(from));
  return out.join("");
}
