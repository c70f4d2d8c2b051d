// Shared by move.mjs and check.mjs: finds the relative module specifiers of a
// source file and resolves them to files, the way TypeScript's NodeNext
// resolution does for this project (a `./x.js` specifier names `./x.ts`).
// Plain Node, no dependencies, so it runs before `npm ci` and on any main.
import { existsSync, readdirSync, statSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";

/** Folders whose sources import each other (and whose specifiers move.mjs rewrites). */
export const CODE_DIRS = ["src", "test", "bench", "soak", "fuzz", "scripts", "bin"];
export const CODE_EXT = /\.(ts|mts|js|mjs)$/;

// `from "x"` covers import ... from and export ... from (also multi-line
// ones: only the tail is matched); `import("x")` dynamic imports; `import "x"`
// side-effect imports. Only quoted literals: a computed import is not a path.
const PATTERNS = [
  /(\bfrom\s*)(["'])([^"'\n]+)\2/g,
  /(\bimport\s*\(\s*)(["'])([^"'\n]+)\2(?=\s*[,)])/g,
  /(^|[;\n]\s*)(?:(import\s+)(["'])([^"'\n]+)\3)/g,
];

/**
 * Every module specifier in `text` with its position: { spec, index } where
 * index is the offset of the first character of the specifier.
 * `// ...` line comments are skipped so an example in a comment is not an edge.
 */
export function specifiers(text) {
  const out = [];
  const commentLines = new Set();
  let offset = 0;
  for (const line of text.split("\n")) {
    if (/^\s*(\/\/|\*|\/\*)/.test(line)) commentLines.add(offset);
    offset += line.length + 1;
  }
  const lineStart = (i) => text.lastIndexOf("\n", i - 1) + 1;
  for (const [n, re] of PATTERNS.entries()) {
    re.lastIndex = 0;
    for (let m; (m = re.exec(text)); ) {
      const spec = n === 2 ? m[4] : m[3];
      const index = n === 2 ? m.index + m[1].length + m[2].length + 1 : m.index + m[1].length + 1;
      if (commentLines.has(lineStart(index))) continue;
      out.push({ spec, index });
    }
  }
  // A side-effect pattern can overlap nothing else; dedupe by position anyway.
  const seen = new Set();
  return out.filter((s) => !seen.has(s.index) && seen.add(s.index)).sort((a, b) => a.index - b.index);
}

export const isRelative = (spec) => spec.startsWith("./") || spec.startsWith("../");

/**
 * The file a relative specifier names, seen from `fromFile` (absolute), or
 * null. `exists(path)` lets move.mjs resolve against the tree before moves.
 */
export function resolveSpec(fromFile, spec, exists = existsFile) {
  const base = resolve(dirname(fromFile), spec);
  const candidates = [base];
  if (/\.js$/.test(base)) candidates.unshift(base.replace(/\.js$/, ".ts"));
  if (/\.mjs$/.test(base)) candidates.unshift(base.replace(/\.mjs$/, ".mts"));
  if (!/\.[a-z]+$/.test(base)) candidates.push(`${base}.ts`, `${base}.js`, join(base, "index.ts"), join(base, "index.js"));
  return candidates.find((c) => exists(c)) ?? null;
}

function existsFile(p) {
  return existsSync(p) && statSync(p).isFile();
}

/** The specifier to write in `fromFile` for `target`, in the style of `oldSpec`. */
export function specFor(fromFile, target, oldSpec) {
  let rel = relative(dirname(fromFile), target).split(sep).join("/");
  if (!rel.startsWith(".")) rel = `./${rel}`;
  // Keep how the specifier named the file: `.js` for a `.ts` source,
  // an explicit `.ts` (bins that run sources through tsx), or no extension.
  if (/\.ts$/.test(target)) {
    if (/\.js$/.test(oldSpec)) rel = rel.replace(/\.ts$/, ".js");
    else if (!/\.ts$/.test(oldSpec)) rel = rel.replace(/\.ts$/, "");
  }
  if (/\.mts$/.test(target) && /\.mjs$/.test(oldSpec)) rel = rel.replace(/\.mts$/, ".mjs");
  return rel;
}

/** Source files (absolute paths) under the code folders of `root`. */
export function codeFiles(root, dirs = CODE_DIRS) {
  const out = [];
  const walk = (d) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.name === "node_modules" || e.name.startsWith(".")) continue;
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (CODE_EXT.test(e.name) && !e.name.endsWith(".d.ts")) out.push(p);
    }
  };
  for (const d of dirs) if (existsSync(join(root, d))) walk(join(root, d));
  return out.sort();
}
