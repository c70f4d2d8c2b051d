// The README's plain-curl WatchStats example, run as written (only the
// agent's address and PKI folder replaced) against a real agent, so the
// example stays true.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { startTestAgent } from "../support/agent.js";

const REPO = join(import.meta.dirname, "..", "..");

test("README: curl with a Connect envelope follows WatchStats", async () => {
  const readme = readFileSync(join(REPO, "README.md"), "utf8");
  const snippet = /^msg='\{"intervalMs":1000\}'\n[\s\S]+?grep -o '\{\.\*'$/m.exec(readme)?.[0];
  assert.ok(snippet, "the example is in the README");
  const agent = await startTestAgent();
  after(() => agent.cleanup());
  const script = `P=${join(agent.stateDir, "pki")}\n` + snippet.replaceAll("https://127.0.0.1:9443", agent.url).replace("curl -sN", "curl -sN --max-time 2.5");
  // curl ends at --max-time (exit 28); the pipeline's status is grep's.
  const { stdout } = await promisify(execFile)("bash", ["-c", script], { timeout: 20_000 });
  const messages = stdout.trim().split("\n").map((l) => JSON.parse(l) as { full?: boolean; sequence?: string });
  assert.ok(messages.length >= 2, `updates every second for 2.5 s: ${stdout}`);
  assert.deepEqual(messages.slice(0, 2).map((m) => [m.full, m.sequence]), [[true, "1"], [true, "2"]]);
});
