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

/** Section keywords of haproxy's configuration language (a line whose first word is one opens a section). */
const SECTIONS = new Set([
  "global", "defaults", "frontend", "backend", "listen", "peers", "resolvers", "userlist",
  "mailers", "program", "http-errors", "ring", "cache", "fcgi-app", "crt-store", "traces",
]);

export function rewriteUpload(text: string): string {
  let inGlobal = false;
  let changed = false;
  const out: string[] = [];
  for (const line of text.split("\n")) {
    const keyword = /^\s*(\S+)/.exec(line)?.[1];
    // haproxy opens a section on its keyword wherever the line is indented.
    if (keyword && SECTIONS.has(keyword)) inGlobal = keyword === "global";
    if (inGlobal && keyword === "group") {
      changed = true;
      continue;
    }
    out.push(line);
  }
  return changed ? out.join("\n") : text;
}
