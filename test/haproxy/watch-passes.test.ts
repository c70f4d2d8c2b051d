// The watch's cost when nothing happens: each pass reads /proc only for
// the masters the agent runs; the pass over all of /proc (which finds
// strays) runs every fullPassMs, or at once when a known master is not as
// expected. Before, every pass (every second) read every process's stat.
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { LoadBalancerManager } from "../../src/haproxy/manager.js";
import { freePort, octaviaConfig } from "../support/haproxy.js";
import { managerDirs } from "../support/lb-test.js";
import { mastersOf } from "../../src/haproxy/masters.js";
import { lbPaths } from "../../src/haproxy/layout.js";

async function startedLb(m: LoadBalancerManager, runDir: string): Promise<string> {
  const lbId = randomUUID();
  await m.putConfig(randomUUID(), lbId, octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), members: [], returnBody: "w" }] }).text);
  await m.control(lbId, "start");
  return lbId;
}

async function until(what: string, ok: () => Promise<boolean> | boolean, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

test("a watch every 20 ms over a running load balancer does not pass over all of /proc each time", async (t) => {
  const { runDir, open } = managerDirs(t);
  const m = await open({ watchIntervalMs: 20, fullPassMs: 60_000 });
  await startedLb(m, runDir);
  const before = m.watchFullPasses;
  await sleep(600); // ~30 passes
  assert.ok(m.watchFullPasses - before <= 1, `${m.watchFullPasses - before} passes over /proc in 600 ms`);
});

test("a master killed behind the agent's back still makes a full pass (and a restart) at once", async (t) => {
  const { stateDir, runDir, open } = managerDirs(t);
  const m = await open({ watchIntervalMs: 20, fullPassMs: 60_000, restartBackoff: { initialMs: 50, maxMs: 50 } });
  const lbId = await startedLb(m, runDir);
  const [master] = await mastersOf(lbPaths(stateDir, join(stateDir, "certs"), lbId).pidFile);
  assert.ok(master);
  await sleep(100);
  const before = m.watchFullPasses;
  process.kill(master.pid, "SIGKILL");
  await until("a restart recorded", async () => {
    const st = await m.status(lbId);
    return st.restarts === 1 && st.state === "RUNNING";
  });
  const now = await mastersOf(lbPaths(stateDir, join(stateDir, "certs"), lbId).pidFile);
  assert.equal(now.length, 1);
  assert.notEqual(now[0]!.pid, master.pid);
  // Well within fullPassMs: the death made the full pass.
  assert.ok(m.watchFullPasses > before, "the death was noticed by a full pass");
});
