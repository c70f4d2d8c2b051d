#!/usr/bin/env node
// Replays the folder restructuring of issue 12 on whatever the tree looks
// like: reads scripts/layout/moves.json and
//   1. `git mv`s every file or folder of "moves" whose source exists (a
//      folder moves file by file, so its target may already exist);
//   2. rewrites every relative import/export specifier in src/, test/,
//      bench/, soak/, fuzz/, scripts/ and bin/ whose file or target moved (each
//      specifier is resolved to a real file before the move and written
//      relative to where both ends are after it; `.js` names the `.ts`),
//      and every path built from a module's own location
//      (`join(import.meta.dirname, "../x")`, `new URL("..", import.meta.url)`);
//   3. rewrites repository paths that name a moved file or folder
//      (`src/rest/`, `src/agent/server.ts`, `dist/...js`) in package.json,
//      tsconfig*.json, .ci/run, every README.md / CONTRIBUTING.md, and in the
//      comments and strings of the code files;
//   4. `git rm`s "delete";
//   5. applies "edits" (literal find -> replace per file; "prepend", only
//      when the file has more than "ifOverLines" lines if given; "moveDecl",
//      declarations moved to another module with their importers; any edit
//      only "ifExists" names an existing file), then drops named imports
//      the edits left unused:
//      the hand fixes the moves alone cannot make (see README.md here).
// Idempotent: a second run finds nothing to move or rewrite and changes
// nothing. Prints what it did; exit 1 when an edit could not be applied
// (its file changed: redo it by hand as README.md describes).
// Usage: node scripts/layout/move.mjs [--dry-run] [--root DIR] [--table FILE]
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { codeFiles, isRelative, resolveSpec, specFor, specifiers } from "./imports.mjs";

const args = process.argv.slice(2);
const dry = args.includes("--dry-run");
const at = args.indexOf("--root");
const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(at >= 0 ? args[at + 1] : join(here, "../.."));
const tableAt = args.indexOf("--table");
const table = JSON.parse(readFileSync(tableAt >= 0 ? resolve(args[tableAt + 1]) : join(here, "moves.json"), "utf8"));
const posix = (p) => p.split(sep).join("/");
const rel = (abs) => posix(relative(root, abs));
const abs = (r) => join(root, r);
const log = (...a) => console.log(...a);

// --- the move table, file and folder entries ------------------------------
const moves = table.moves.map(({ from, to }) => ({ from, to, dir: from.endsWith("/") }));
for (const m of moves) if (m.dir !== m.to.endsWith("/")) throw new Error(`moves.json: ${m.from} -> ${m.to}: both or neither end with /`);

/** Where a repository path (relative, posix) lives after the moves. */
function mapPath(p) {
  const file = moves.find((m) => !m.dir && m.from === p);
  if (file) return file.to;
  const dir = moves.filter((m) => m.dir && p.startsWith(m.from)).sort((a, b) => b.from.length - a.from.length)[0];
  return dir ? dir.to + p.slice(dir.from.length) : p;
}

function git(...a) {
  return execFileSync("git", a, { cwd: root, encoding: "utf8" });
}
const tracked = new Set(git("ls-files", "-z").split("\0").filter(Boolean));

// --- 1. plan the file moves -------------------------------------------------
const planned = new Map(); // from -> to, files
const conflicts = [];
for (const m of moves) {
  const sources = m.dir ? [...tracked].filter((f) => f.startsWith(m.from)) : tracked.has(m.from) ? [m.from] : [];
  for (const from of sources) {
    const to = mapPath(from);
    if (to === from || planned.has(from)) continue;
    if (existsSync(abs(to))) conflicts.push(`${from} -> ${to}: target exists, not moved`);
    else planned.set(from, to);
  }
}
const plan = [...planned];
const moving = planned;
const after = (p) => moving.get(p) ?? p;

// --- 2. import specifiers ---------------------------------------------------
// Resolve in the tree as it is now; a specifier that names nothing now but
// names a file once mapped through the table (code written against the old
// layout after a previous run) is rewritten too.
const rewrites = new Map(); // rel path now -> new text
let specChanges = 0;
// This tool and its test name old paths on purpose.
const OWN = /^(scripts|test)\/layout\//;
for (const file of codeFiles(root)) {
  const fileRel = rel(file);
  if (OWN.test(fileRel)) continue;
  const text = rewrites.get(fileRel) ?? readFileSync(file, "utf8");
  let out = "";
  let last = 0;
  for (const { spec, index } of specifiers(text)) {
    if (!isRelative(spec)) continue;
    let target = resolveSpec(file, spec);
    let targetAfter;
    if (target) targetAfter = after(rel(target));
    else {
      // Not there now: maybe it names a path the table moved already.
      const guess = resolveSpec(file, spec, (p) => {
        const mapped = mapPath(rel(p));
        return mapped !== rel(p) && existsSync(abs(mapped)) && statSync(abs(mapped)).isFile();
      });
      if (!guess) continue;
      targetAfter = mapPath(rel(guess));
    }
    const next = specFor(abs(after(fileRel)), abs(targetAfter), spec);
    if (next === spec) continue;
    out += text.slice(last, index) + next;
    last = index + spec.length;
    specChanges++;
  }
  if (last) rewrites.set(fileRel, out + text.slice(last));
}

// Paths built from the module's own location (`join(import.meta.dirname,
// "../../src/gen")`, `new URL("..", import.meta.url)`) name files and folders
// like specifiers do, and change when either end moves.
const LOCATED = [
  /(import\.meta\.dirname\s*,\s*)(["'])(\.\.?(?:\/[^"'\n]*)?)\2/g,
  /(new\s+URL\(\s*)(["'])(\.\.?(?:\/[^"'\n]*)?)\2(?=\s*,\s*import\.meta\.url)/g,
];
const mapAny = (p) => (p === "" ? p : mapPath(p) !== p ? mapPath(p) : mapPath(`${p}/`).replace(/\/$/, ""));
for (const file of codeFiles(root)) {
  const fileRel = rel(file);
  if (OWN.test(fileRel)) continue;
  const text = rewrites.get(fileRel) ?? readFileSync(file, "utf8");
  let next = text;
  for (const re of LOCATED) {
    next = next.replace(re, (all, pre, q, p) => {
      const target = resolve(dirname(file), p);
      if (!existsSync(target)) return all;
      let np = posix(relative(dirname(abs(after(fileRel))), abs(mapAny(rel(target))))) || ".";
      if (!np.startsWith(".")) np = `./${np}`;
      if (p.endsWith("/") && !np.endsWith("/")) np += "/";
      if (np === p) return all;
      specChanges++;
      return `${pre}${q}${np}${q}`;
    });
  }
  if (next !== text) rewrites.set(fileRel, next);
}

// --- 3. paths named in text ---------------------------------------------------
// Longest first, so src/agent/services/ wins over src/agent/. A path must not
// be preceded by a path character other than a leading `./` (so `../../src/x`
// import specifiers, done above, and longer paths are left alone, while
// package.json's "./dist/x.js" is not) and a file path must not go on.
const esc = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
const textRules = [];
for (const m of [...moves].sort((a, b) => b.from.length - a.from.length)) {
  const pairs = [[m.from, m.to]];
  if (m.from.startsWith("src/")) {
    const d = (p) => "dist/" + p.slice(4);
    if (m.dir) pairs.push([d(m.from), d(m.to)]);
    else if (m.from.endsWith(".ts")) {
      pairs.push([m.from.replace(/\.ts$/, ".js"), m.to.replace(/\.ts$/, ".js")]);
      pairs.push([d(m.from).replace(/\.ts$/, ".js"), d(m.to).replace(/\.ts$/, ".js")]);
      pairs.push([d(m.from).replace(/\.ts$/, ".d.ts"), d(m.to).replace(/\.ts$/, ".d.ts")]);
    }
  }
  for (const [from, to] of pairs) {
    // A folder also matches when named without its trailing slash.
    const pattern = m.dir ? `${esc(from.slice(0, -1))}(?=/|[^\\w./-]|\\.(?![\\w/])|$)` : `${esc(from)}(?![\\w/-]|\\.\\w)`;
    textRules.push({ re: new RegExp(`(?<=(?:^|[^\\w./-])(?:\\./)?)${pattern}`, "gm"), to: m.dir ? to.slice(0, -1) : to, from });
  }
}
function docFiles() {
  const out = ["package.json", ".ci/run"].filter((f) => existsSync(abs(f)));
  for (const f of readdirSync(root)) if (/^tsconfig.*\.json$/.test(f)) out.push(f);
  for (const f of tracked) if (/(^|\/)(README|CONTRIBUTING)\.md$/.test(f) && existsSync(abs(f))) out.push(f);
  return out;
}
let textChanges = 0;
for (const f of new Set([...docFiles(), ...codeFiles(root).map(rel)])) {
  if (OWN.test(f)) continue;
  const text = rewrites.get(f) ?? readFileSync(abs(f), "utf8");
  let next = text;
  for (const r of textRules) next = next.replace(r.re, () => (textChanges++, r.to));
  if (next !== text) rewrites.set(f, next);
}

// --- report the plan; stop here on --dry-run ---------------------------------
for (const [from, to] of plan) log(`move    ${from} -> ${to}`);
for (const c of conflicts) log(`CONFLICT ${c}`);
for (const f of rewrites.keys()) log(`rewrite ${after(f)}`);
const deletes = (table.delete ?? []).filter((f) => tracked.has(f));
for (const f of deletes) log(`delete  ${f}`);
if (dry) {
  log(`dry run: ${plan.length} moves, ${specChanges} specifiers, ${textChanges} path mentions, ${deletes.length} deletions`);
  process.exit(0);
}

// --- apply ----------------------------------------------------------------------
for (const [from, to] of plan) {
  mkdirSync(dirname(abs(to)), { recursive: true });
  git("mv", from, to);
}
for (const [f, text] of rewrites) writeFileSync(abs(after(f)), text);
for (const f of deletes) git("rm", "-q", f);
// Folders the moves emptied.
for (const d of new Set([...plan.map(([f]) => dirname(f)), ...deletes.map(dirname)])) {
  for (let p = abs(d); p.startsWith(abs("src")) || p.startsWith(abs("test")); p = dirname(p)) {
    if (!existsSync(p) || readdirSync(p).length) break;
    rmdirSync(p);
  }
}

// --- 5. edits ---------------------------------------------------------------------
let failed = 0;
const touched = new Set();
for (const e of table.edits ?? []) {
  if (e.ifExists && !existsSync(abs(e.ifExists))) continue;
  if (e.moveDecl) {
    failed += moveDecl(e);
    continue;
  }
  const path = abs(e.file);
  if (!existsSync(path)) {
    log(`edit    ${e.file}: ${e.optional ? "skipped, file is gone" : "MISSING FILE"} (${e.why})`);
    if (!e.optional) failed++;
    continue;
  }
  let text = readFileSync(path, "utf8");
  const before = text;
  const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
  if (e.prepend && !text.includes(e.prepend.trim()) && lines > (e.ifOverLines ?? -1)) {
    text = text.startsWith("#!") ? text.replace(/^(#!.*\n)/, `$1${e.prepend}`) : e.prepend + text;
  }
  for (const [find, repl] of e.replace ?? []) {
    // Done already when the new text is there (it may contain the old), or,
    // for a removal, when the old text is gone (the checks catch a line
    // another branch reworded instead).
    if (repl ? text.includes(repl) : !text.includes(find)) continue;
    if (text.includes(find)) text = text.split(find).join(repl);
    else {
      log(`edit    ${e.file}: NOT APPLIED, neither the old nor the new text is there: ${JSON.stringify(find.slice(0, 80))} (${e.why})`);
      if (!e.optional) failed++;
    }
  }
  if (text !== before) {
    writeFileSync(path, text);
    touched.add(e.file);
    log(`edit    ${e.file}: ${e.why}`);
  }
}

/**
 * Moves top-level declarations (with the comment above them) from one
 * module to another, where a type or value belongs lower in the layers or
 * in a leaf module that breaks a cycle: the target gets them (created with
 * "header" when new), the source imports back what it still uses, and
 * every `import { ... } from` the source of a moved name imports it from the
 * target instead. Idempotent: a name already in the target is not moved.
 */
function moveDecl(e) {
  const { from, to, names, header = "" } = e.moveDecl;
  if (!existsSync(abs(from))) {
    log(`edit    ${from}: ${e.optional ? "skipped, file is gone" : "MISSING FILE"} (${e.why})`);
    return e.optional ? 0 : 1;
  }
  let src = readFileSync(abs(from), "utf8");
  let dst = existsSync(abs(to)) ? readFileSync(abs(to), "utf8") : header;
  const declRe = (n) => new RegExp(`^(?:export\\s+)?(?:declare\\s+)?(?:async\\s+)?(interface|type|const|let|function|class|enum)\\s+${n}\\b`, "m");
  const moved = [];
  let missing = 0;
  for (const n of names) {
    if (declRe(n).test(dst)) continue;
    const m = declRe(n).exec(src);
    if (!m) {
      log(`edit    ${from}: NOT APPLIED, no declaration of ${n} (${e.why})`);
      missing++;
      continue;
    }
    const [start, end] = declSpan(src, m.index);
    const decl = src.slice(start, end);
    src = src.slice(0, start) + src.slice(end).replace(/^\n(?=\n)/, "");
    dst = dst.replace(/\n*$/, "\n\n") + decl.trim() + "\n";
    moved.push({ name: n, type: /^(interface|type)$/.test(m[1]), exported: /^export\b/.test(decl.replace(/^(\s*(\/\/.*|\/\*[\s\S]*?\*\/)\s*)*/, "")) });
  }
  if (!moved.length) return e.optional ? 0 : missing;
  mkdirSync(dirname(abs(to)), { recursive: true });
  writeFileSync(abs(to), dst.replace(/^\n+/, ""));
  // The source imports back what it exported (pruned below when unused).
  const spec = specFor(abs(from), abs(to), "x.js");
  const back = moved.filter((d) => d.exported);
  const lines = [];
  if (back.some((d) => !d.type)) lines.push(`import { ${back.filter((d) => !d.type).map((d) => d.name).join(", ")} } from "${spec}";`);
  if (back.some((d) => d.type)) lines.push(`import type { ${back.filter((d) => d.type).map((d) => d.name).join(", ")} } from "${spec}";`);
  src = insertImports(src, lines);
  writeFileSync(abs(from), src);
  touched.add(from).add(to);
  // Importers of a moved name import it from the target.
  for (const file of codeFiles(root)) {
    const fr = rel(file);
    if (fr === from || fr === to || OWN.test(fr)) continue;
    const text = readFileSync(file, "utf8");
    const next = text.replace(/import\s+(type\s+)?\{([^}]*)\}\s*from\s*(["'])([^"']+)\3;?/g, (all, typeAll, list, q, sp) => {
      if (!isRelative(sp) || resolveSpec(file, sp) !== abs(from)) return all;
      const items = list.split(",").map((x) => x.trim()).filter(Boolean);
      const isMoved = (it) => back.some((d) => d.name === it.replace(/^type\s+/, "").split(/\s+as\s+/)[0]);
      const go = items.filter(isMoved);
      if (!go.length) return all;
      const stay = items.filter((it) => !isMoved(it));
      const kw = typeAll ? "import type" : "import";
      const out = [];
      if (stay.length) out.push(`${kw} { ${stay.join(", ")} } from ${q}${sp}${q};`);
      out.push(`${kw} { ${go.join(", ")} } from ${q}${specFor(file, abs(to), sp)}${q};`);
      return out.join("\n");
    });
    if (next !== text) {
      writeFileSync(file, next);
      touched.add(fr);
    }
  }
  log(`edit    ${from} -> ${to}: moved ${moved.map((d) => d.name).join(", ")} (${e.why})`);
  return e.optional ? 0 : missing;
}

/** Start and end of the top-level declaration at `at`, with the comment lines right above it. */
function declSpan(text, at) {
  let start = at;
  for (;;) {
    const prevEnd = start - 1;
    if (prevEnd < 0) break;
    const prevStart = text.lastIndexOf("\n", prevEnd - 1) + 1;
    const line = text.slice(prevStart, prevEnd);
    if (/^\s*(\/\/|\/\*\*?|\*)/.test(line) && !/^\s*\/\/ ---/.test(line)) start = prevStart;
    else break;
  }
  // To the end of the statement: depth of (), [], {} and <> back to zero at a
  // `;`, or a `}` closing a block at depth zero (interface, function, class).
  let depth = 0;
  let i = at;
  let quote = null;
  for (; i < text.length; i++) {
    const c = text[i];
    if (quote) {
      if (c === "\\") i++;
      else if (c === quote) quote = null;
      continue;
    }
    if (c === '"' || c === "'" || c === "`") quote = c;
    else if (c === "/" && text[i + 1] === "/") i = text.indexOf("\n", i) - 1;
    else if (c === "/" && text[i + 1] === "*") i = text.indexOf("*/", i + 2) + 1;
    else if ("([{".includes(c)) depth++;
    else if (")]}".includes(c)) {
      depth--;
      if (depth === 0 && c === "}" && !/^\s*[;,.=)|&]/.test(text.slice(i + 1, i + 3)) && /^(?:export\s+)?(?:declare\s+)?(?:async\s+)?(interface|function|class|enum)\b/.test(text.slice(at))) break;
    } else if (c === ";" && depth === 0) break;
  }
  let end = i + 1;
  if (text[end] === "\n") end++;
  return [start, end];
}

/** Adds import lines after the last import statement (or at the top, below comments). */
function insertImports(text, lines) {
  if (!lines.length) return text;
  const re = /^import\s[^;]*?from\s*["'][^"']+["'];?[^\n]*\n|^import\s*["'][^"']+["'];?\n/gm;
  let last = -1;
  for (let m; (m = re.exec(text)); ) last = m.index + m[0].length;
  if (last < 0) last = (/^(?:\s*(?:\/\/[^\n]*|#![^\n]*)\n)*/.exec(text)?.[0].length ?? 0);
  return text.slice(0, last) + lines.join("\n") + "\n" + text.slice(last);
}

// Named imports an edit left unused (noUnusedLocals would fail the build).
for (const f of touched) {
  if (!existsSync(abs(f))) continue;
  const text = readFileSync(abs(f), "utf8");
  const body = (t) => t.replace(/^import\s[^;]*?from\s*["'][^"']+["'];?$/gm, "");
  const next = text.replace(/^import\s+(type\s+)?\{([^}]*)\}\s*from\s*(["'][^"']+["']);?$/gm, (all, typeAll, list, sp) => {
    const items = list.split(",").map((x) => x.trim()).filter(Boolean);
    const used = items.filter((it) => {
      const local = it.replace(/^type\s+/, "").split(/\s+as\s+/).pop();
      // Not after one dot: `import("node:tls").TLSSocket` is no use of a local
      // TLSSocket (a spread `...name` is).
      return new RegExp(`(?<![\\w$])(?<!(?<!\\.)\\.)${local}\\b`).test(body(text));
    });
    if (used.length === items.length) return all;
    return used.length ? `import ${typeAll ?? ""}{ ${used.join(", ")} } from ${sp};` : "";
  }).replace(/^import\s+type\s+(\w+)\s+from\s*(["'][^"']+["']);?$/gm, (all, name) => (new RegExp(`(?<![\\w$])(?<!(?<!\\.)\\.)${name}\\b`).test(body(text)) ? all : ""))
    .replace(/\n{3,}/g, "\n\n");
  // Lines emptied above leave a blank line in the import block; drop it.
  const tidy = next.replace(/^(import [^\n]*\n)\n(?=import )/gm, "$1");
  if (tidy !== text) writeFileSync(abs(f), tidy);
}

log(`done: ${plan.length} moves, ${specChanges} specifiers, ${textChanges} path mentions, ${deletes.length} deletions${conflicts.length ? `, ${conflicts.length} CONFLICTS` : ""}${failed ? `, ${failed} edits NOT APPLIED` : ""}`);
process.exit(failed || conflicts.length ? 1 : 0);
