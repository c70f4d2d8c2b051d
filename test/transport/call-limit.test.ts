// Work is bounded by calls, not only by streams: a cancelled call's work
// goes on (HTTP/2 rapid reset), so unary calls in progress are capped
// (resource_exhausted beyond, retryable), programs run at most 64 at once,
// and a program that cannot even be started (no file descriptors left)
// is a failed run, never a dead agent.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { startTestAgent } from "../support/agent.js";
import { connectH2, outcomeOf, rawRequest } from "../support/raw-rpc.js";
import { DEFAULT_LIMITS } from "../../src/config/transport-options.js";
import { ProgramSlots } from "../../src/system/program-slots.js";

test("unary calls beyond max_calls_in_progress answer resource_exhausted (REST 503) and the agent keeps serving", async (t) => {
  const agent = await startTestAgent({ overrides: { limits: { ...DEFAULT_LIMITS, maxCalls: 2 } } });
  t.after(() => agent.cleanup());
  const s = await connectH2(agent.url, agent);
  t.after(() => s.close());
  // GetInfo runs `haproxy -v`: 40 at once cannot all fit in 2 slots.
  const answers = await Promise.all(Array.from({ length: 40 }, (_, i) =>
    i % 2 ? rawRequest(s, "/amphora.v1.SystemService/GetInfo", "application/json", "{}") : rawRequest(s, "/1.0/info", undefined, "", {}, "GET")));
  const codes = answers.map((a, i) => (i % 2 ? outcomeOf("application/json", a).code : `rest-${a.status}`));
  assert.ok(codes.includes("resource_exhausted") || codes.includes("rest-503"), codes.join(","));
  assert.ok(codes.every((c) => ["ok", "resource_exhausted", "rest-200", "rest-503"].includes(c)), codes.join(","));
  assert.equal((await rawRequest(s, "/1.0/info", undefined, "", {}, "GET")).status, 200);
});

test("program slots: never more than max at once, every caller served", async () => {
  const slots = new ProgramSlots(3);
  let now = 0;
  let peak = 0;
  const done = await Promise.all(Array.from({ length: 20 }, (_, i) => slots.run(async () => {
    peak = Math.max(peak, ++now);
    await new Promise((r) => setTimeout(r, 5));
    now--;
    return i;
  })));
  assert.equal(peak, 3);
  assert.deepEqual(done, Array.from({ length: 20 }, (_, i) => i));
});

test("a program that cannot be started for lack of file descriptors is a failed run, not a crash", () => {
  const script = `
    import { closeSync, openSync } from "node:fs";
    import { run } from "./src/system/exec.ts";
    const fds = [];
    try { for (;;) fds.push(openSync("/dev/null", "r")); } catch {}
    fds.splice(-2).forEach((fd) => closeSync(fd));
    const rs = await Promise.all([1, 2, 3].map(() => run("haproxy", ["-v"], { timeoutMs: 5000 })));
    console.log("exit codes", rs.map((r) => r.exitCode).join(","));`;
  const r = spawnSync("prlimit", ["--nofile=64", process.execPath, "--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /exit codes 1,1,1/);
});
