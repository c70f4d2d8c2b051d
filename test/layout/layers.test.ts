// The layering rule of issue 12 on this tree (scripts/layout/check.mjs):
// no import from a lower layer to a higher one, no import cycle, no module
// over 400 lines without a `// size:` reason, no module nothing imports.
// Also checks the checker and the replayable restructuring script on small
// trees of their own, so neither can pass by finding nothing. Fast: parses
// files, starts no agent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const ROOT = join(import.meta.dirname, "../..");
const CHECK = join(ROOT, "scripts/layout/check.mjs");
const MOVE = join(ROOT, "scripts/layout/move.mjs");

interface Finding {
  kind: "layer" | "cycle" | "size" | "orphan";
  message: string;
  file?: string;
  files?: string[];
}

function check(root: string): Finding[] {
  const r = spawnSync(process.execPath, [CHECK, "--root", root, "--json"], { encoding: "utf8" });
  assert.ok(r.status === 0 || r.status === 1, `check.mjs failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Finding[];
}

function tree(t: { after(fn: () => void): void }, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "amphora-layout-"));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, path)), { recursive: true });
    writeFileSync(join(dir, path), text);
  }
  return dir;
}

test("src/ keeps the layers: no upward import, no cycle, no unexplained big module, no orphan", () => {
  const findings = check(ROOT);
  assert.deepEqual(findings.map((f) => f.message), [], "run `node scripts/layout/check.mjs` for the list");
});

test("the checker finds an upward import, a cycle, a big module and an orphan", (t) => {
  const big = Array.from({ length: 401 }, (_, i) => `export const v${i} = ${i};`).join("\n") + "\n";
  const root = tree(t, {
    "src/agent/main.ts": 'import "../metrics/m.js";\nimport "../haproxy/a.js";\nimport "../haproxy/big.js";\nimport "../haproxy/big-ok.js";\n',
    // metrics (low) importing agent (the top): upward.
    "src/metrics/m.ts": 'import type { X } from "../agent/x.js";\nexport type Y = X;\n',
    "src/agent/x.ts": "export type X = 1;\n",
    // a -> b -> a inside one folder: a cycle, allowed by the layers.
    "src/haproxy/a.ts": 'import { b } from "./b.js";\nexport const a = () => b;\n',
    "src/haproxy/b.ts": 'export { a as b } from "./a.js";\n',
    "src/haproxy/big.ts": big,
    "src/haproxy/big-ok.ts": "// What this is.\n// size: generated-like table, one entry per line\n" + big,
    "src/haproxy/unused.ts": "export const nobody = 1;\n",
    // The client column may not import agent-side code.
    "src/driver/index.ts": 'import { DomainError } from "../errors.js";\nexport { DomainError };\n',
    "src/errors.ts": "export class DomainError extends Error {}\n",
  });
  const findings = check(root);
  const by = (kind: string) => findings.filter((f) => f.kind === kind).map((f) => f.file ?? f.files?.join(","));
  assert.deepEqual(by("layer").sort(), ["src/driver/index.ts", "src/metrics/m.ts"]);
  assert.deepEqual(by("cycle"), ["src/haproxy/a.ts,src/haproxy/b.ts"]);
  assert.match(findings.find((f) => f.kind === "cycle")!.message, /a\.ts -> src\/haproxy\/b\.ts -> src\/haproxy\/a\.ts/);
  assert.deepEqual(by("size"), ["src/haproxy/big.ts"]);
  assert.deepEqual(by("orphan"), ["src/haproxy/unused.ts"]);
});

test("move.mjs moves files and folders, rewrites imports and named paths, applies edits, and a second run changes nothing", (t) => {
  const root = tree(t, {
    "src/agent/server.ts": 'import type { Socket } from "node:net";\nimport { lock } from "../haproxy/lock.js";\n\n/** Bounds. */\nexport interface Limits {\n  // the client\'s own\n  max: number;\n}\nexport const server = (s: Socket, l: Limits) => [s, l, lock];\n',
    "src/config/config.ts": 'import { server, type Limits } from "../agent/server.js";\nexport const limits: Limits = { max: 1 };\nvoid server;\n',
    "src/haproxy/lock.ts": "export const lock = 1;\n",
    "src/rest/handler.ts": 'import { server } from "../agent/server.js";\nexport const h = server;\n',
    "src/agent/agent.ts": 'import { h } from "../rest/handler.js";\nconst m = await import("./server.js");\nexport { h, m };\n',
    "test/rest/handler.test.ts": '// Tests src/rest/handler.ts.\nimport { join } from "node:path";\nimport { h } from "../../src/rest/handler.js";\nexport const dir = join(import.meta.dirname, "../../src/rest");\nvoid h;\n',
    "README.md": "REST lives in `src/rest/`, the server in src/agent/server.ts; see src/rest.\n",
    "package.json": '{ "exports": { "./server": "./dist/agent/server.js" } }\n',
  });
  const table = join(root, "moves.json");
  writeFileSync(table, JSON.stringify({
    moves: [
      { from: "src/agent/server.ts", to: "src/transport/server.ts" },
      { from: "src/rest/", to: "src/transport/rest/" },
      { from: "src/haproxy/lock.ts", to: "src/system/lock.ts" },
      { from: "test/rest/", to: "test/transport/rest/" },
    ],
    edits: [
      { file: "src/system/lock.ts", why: "test", replace: [["= 1;", "= 2;"]] },
      { why: "test", moveDecl: { from: "src/transport/server.ts", to: "src/config/limits.ts", names: ["Limits"], header: "// Limits.\n" } },
    ],
  }));
  const git = (...a: string[]) => execFileSync("git", a, { cwd: root, encoding: "utf8" });
  git("init", "-q");
  git("add", "-A");
  git("-c", "user.email=t@example.org", "-c", "user.name=t", "commit", "-qm", "before");
  const run = () => execFileSync(process.execPath, [MOVE, "--root", root, "--table", table], { encoding: "utf8" });
  const first = run();
  assert.match(first, /done: 4 moves, 7 specifiers/);
  const read = (p: string) => readFileSync(join(root, p), "utf8");
  assert.match(read("src/transport/server.ts"), /from "\.\.\/system\/lock\.js"/);
  assert.match(read("src/transport/rest/handler.ts"), /from "\.\.\/server\.js"/);
  assert.match(read("src/agent/agent.ts"), /from "\.\.\/transport\/rest\/handler\.js"/);
  assert.match(read("src/agent/agent.ts"), /import\("\.\.\/transport\/server\.js"\)/);
  assert.match(read("test/transport/rest/handler.test.ts"), /"\.\.\/\.\.\/\.\.\/src\/transport\/rest\/handler\.js"/);
  assert.match(read("test/transport/rest/handler.test.ts"), /Tests src\/transport\/rest\/handler\.ts\./);
  assert.match(read("test/transport/rest/handler.test.ts"), /join\(import\.meta\.dirname, "\.\.\/\.\.\/\.\.\/src\/transport\/rest"\)/);
  assert.equal(read("README.md"), "REST lives in `src/transport/rest/`, the server in src/transport/server.ts; see src/transport/rest.\n");
  assert.match(read("package.json"), /\.\/dist\/transport\/server\.js/);
  assert.equal(read("src/system/lock.ts"), "export const lock = 2;\n");
  // moveDecl: the declaration with its comment, imported back where it is
  // still used, and its importers pointed at the new module.
  assert.equal(read("src/config/limits.ts"), "// Limits.\n\n/** Bounds. */\nexport interface Limits {\n  // the client's own\n  max: number;\n}\n");
  assert.match(read("src/transport/server.ts"), /^import type \{ Socket \} from "node:net";\nimport \{ lock \} from "\.\.\/system\/lock\.js";\nimport type \{ Limits \} from "\.\.\/config\/limits\.js";\n\nexport const server/);
  assert.match(read("src/config/config.ts"), /^import \{ server \} from "\.\.\/transport\/server\.js";\nimport \{ type Limits \} from "\.\/limits\.js";\n/);
  git("add", "-A");
  const staged = git("status", "--porcelain");
  assert.match(run(), /done: 0 moves, 0 specifiers, 0 path mentions, 0 deletions\n$/);
  assert.equal(git("status", "--porcelain"), staged);
  assert.equal(git("diff"), "", "the second run wrote nothing");
});
