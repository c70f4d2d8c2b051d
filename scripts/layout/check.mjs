#!/usr/bin/env node
// Layering check of src/ (issue 12): parses every import of every module
// under src/ and reports
//   layer   an import from a folder to a folder of the same or a higher layer
//           (per LAYERS below), or from a folder that has no layer yet;
//   cycle   a circle of imports between files (type-only imports count too:
//           a circle of types is a circle of concepts);
//   size    a module over MAX_LINES lines without a `// size: <why>` line in
//           the comment block at its top (generated code is exempt);
//   orphan  a module nothing imports (not src/, test/, bench/, soak/,
//           scripts/ or bin/) that is not an entry point.
// Usage: node scripts/layout/check.mjs [--root DIR] [--json]
// Exit status 1 when there is a finding. test/layout/layers.test.ts runs it.
import { readFileSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { fileURLToPath } from "node:url";
import { codeFiles, isRelative, resolveSpec, specifiers } from "./imports.mjs";

export const MAX_LINES = 400;

// The layers, lowest first. A folder may import its own files and folders of
// a LOWER layer of its own column or of the shared column, nothing else;
// folders in one layer are independent of each other. Why this order:
// - gen (generated contract code) knows only the protobuf runtime; errors.ts
//   and log.ts (src root, "(root)") are what every domain module throws and
//   logs with; system wraps the OS (exec, atomic files, locks, host facts).
// - The domain: haproxy and certs own load balancers and their files;
//   network plumbs interfaces (it may read haproxy state, e.g. to announce a
//   VIP when a load balancer starts); keepalived's check script reads the
//   haproxy catalog and its VRRP config names network interfaces; stats
//   reads haproxy through its master CLI. Domain modules get their settings
//   passed in: none reads the agent's configuration.
// - config is the agent's own configuration (amphora-agent.conf, flags, the
//   live ConfigStore). It sits above the domain because checking a config
//   may use domain parsers (the PEM bundle of the TLS material it names),
//   and below everything that runs on it (heartbeat targets, metrics,
//   transport's TLS and limits), so it knows nothing of what reads it.
// - events, heartbeat and metrics observe the domain (heartbeat sends stats,
//   metrics exports stats and heartbeat counters) and never drive it.
// - transport carries calls (TLS, HTTP/2 server, interceptors, context keys,
//   error mapping, REST): it is handed its routes and fallbacks, so it never
//   imports services or the agent.
// - services are the RPC handlers (request -> domain -> response); they may
//   read transport's context keys (protocol, peer) but transport never
//   names them.
// - agent is the only composition root: it builds every part and wires
//   them. Nothing imports it.
// The client side (driver, cli) is its own column: it shares only the
// generated contract with the agent side and never imports agent code.
export const LAYERS = [
  { column: "shared", folders: ["gen"] },
  { column: "agent", folders: ["(root)"] },
  { column: "agent", folders: ["system"] },
  { column: "agent", folders: ["haproxy", "certs"] },
  { column: "agent", folders: ["network"] },
  { column: "agent", folders: ["keepalived", "stats"] },
  { column: "agent", folders: ["config"] },
  { column: "agent", folders: ["events", "heartbeat"] },
  { column: "agent", folders: ["metrics"] },
  { column: "agent", folders: ["transport"] },
  { column: "agent", folders: ["services"] },
  { column: "agent", folders: ["agent"] },
  { column: "client", folders: ["driver"] },
  { column: "client", folders: ["cli"] },
];

/** Modules run directly (not imported): the two programs and the package export. */
export const ENTRY_POINTS = ["src/agent/main.ts", "src/cli/main.ts", "src/driver/index.ts"];
const GENERATED = /^src\/gen\//;

const rankOf = new Map(LAYERS.flatMap((l, i) => l.folders.map((f) => [f, { rank: i, column: l.column }])));

/** "haproxy" for src/haproxy/x.ts, "(root)" for src/errors.ts. */
export function folderOf(rel) {
  const parts = rel.split("/");
  return parts.length > 2 ? parts[1] : "(root)";
}

function allowed(from, to) {
  if (from === to) return true;
  const a = rankOf.get(from);
  const b = rankOf.get(to);
  if (!a || !b) return false;
  return b.rank < a.rank && (b.column === a.column || b.column === "shared");
}

/** The import graph of `root`: Map<rel file, Set<rel file>> for every code file. */
export function importGraph(root) {
  const graph = new Map();
  for (const abs of codeFiles(root)) {
    const rel = relative(root, abs).split(sep).join("/");
    const text = readFileSync(abs, "utf8");
    const targets = new Set();
    for (const { spec } of specifiers(text)) {
      if (!isRelative(spec)) continue;
      const t = resolveSpec(abs, spec);
      if (t) targets.add(relative(root, t).split(sep).join("/"));
    }
    graph.set(rel, targets);
  }
  return graph;
}

/** Strongly connected components with more than one file (or a self-import), Tarjan's algorithm. */
function cycles(graph) {
  let index = 0;
  const idx = new Map(), low = new Map(), onStack = new Set(), stack = [], out = [];
  const visit = (v) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v), low.get(w)));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v), idx.get(w)));
    }
    if (low.get(v) === idx.get(v)) {
      const scc = [];
      let w;
      do {
        w = stack.pop();
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || graph.get(v).has(v)) out.push(scc.sort());
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

/** The shortest circle through the cycle's first file, for the message: a -> b -> ... -> a. */
function cyclePath(graph, scc) {
  const inScc = new Set(scc);
  const start = scc[0];
  const prev = new Map();
  const queue = [start];
  while (queue.length) {
    const v = queue.shift();
    for (const w of [...graph.get(v)].filter((x) => inScc.has(x)).sort()) {
      if (w === start) {
        const path = [start];
        for (let u = v; u !== start; u = prev.get(u)) path.splice(1, 0, u);
        return [...path, start].join(" -> ");
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return scc.join(", ");
}

function leadingComment(text) {
  const lines = [];
  for (const line of text.split("\n")) {
    if (/^\s*(\/\/|\/\*|\*|#!)/.test(line) || line.trim() === "") lines.push(line);
    else break;
  }
  return lines.join("\n");
}

export function check(root) {
  const graph = importGraph(root);
  const src = [...graph.keys()].filter((f) => f.startsWith("src/"));
  const findings = [];
  for (const file of src) {
    const from = folderOf(file);
    for (const target of graph.get(file)) {
      if (!target.startsWith("src/")) continue;
      const to = folderOf(target);
      if (allowed(from, to)) continue;
      const why = !rankOf.has(from) ? `folder ${from} has no layer in scripts/layout/check.mjs`
        : !rankOf.has(to) ? `folder ${to} has no layer in scripts/layout/check.mjs`
        : `${from} (layer ${rankOf.get(from).rank}, ${rankOf.get(from).column}) may not import ${to} (layer ${rankOf.get(to).rank}, ${rankOf.get(to).column})`;
      findings.push({ kind: "layer", file, target, message: `${file} imports ${target}: ${why}` });
    }
  }
  const srcGraph = new Map(src.map((f) => [f, new Set([...graph.get(f)].filter((t) => t.startsWith("src/")))]));
  for (const scc of cycles(srcGraph)) {
    findings.push({ kind: "cycle", files: scc, message: `import cycle: ${cyclePath(srcGraph, scc)}` });
  }
  for (const file of src) {
    if (GENERATED.test(file)) continue;
    const text = readFileSync(join(root, file), "utf8");
    const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
    if (lines > MAX_LINES && !/\/\/\s*size:\s*\S/.test(leadingComment(text))) {
      findings.push({ kind: "size", file, lines, message: `${file} has ${lines} lines (> ${MAX_LINES}) and no "// size: <why>" at its top` });
    }
  }
  const imported = new Set([...graph.values()].flatMap((s) => [...s]));
  for (const file of src) {
    if (GENERATED.test(file) || ENTRY_POINTS.includes(file) || imported.has(file)) continue;
    findings.push({ kind: "orphan", file, message: `${file} is imported by nothing (delete it, or list it in ENTRY_POINTS)` });
  }
  return findings;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const at = args.indexOf("--root");
  const root = resolve(at >= 0 ? args[at + 1] : join(fileURLToPath(import.meta.url), "../../.."));
  const findings = check(root);
  if (args.includes("--json")) console.log(JSON.stringify(findings, null, 1));
  else {
    for (const f of findings) console.log(`${f.kind.padEnd(6)} ${f.message}`);
    const byKind = new Map();
    for (const f of findings) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
    const counts = [...byKind].map(([k, n]) => `${n} ${k}`);
    console.log(findings.length ? `layout check: ${findings.length} findings (${counts.join(", ")})` : "layout check: clean");
  }
  process.exit(findings.length ? 1 : 0);
}
