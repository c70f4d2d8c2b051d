// The keepalived check follows one source of truth for "wanted running":
// the haproxy manager's state through the catalog, on its events, with no
// copy of its own kept in step by polling (issue 12). Polling is pushed out
// of reach here (60 s), so only the events can move it.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { HaproxyCheckScripts } from "../../src/keepalived/check-script.js";
import { freePort, octaviaConfig, processRuns } from "../support/haproxy.js";
import { managerDirs } from "../support/lb-test.js";

async function until(what: string, ok: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test("the check requires what the manager wants running: a haproxy that died stays required, a stop of it (no haproxy ran) releases it at once", async (t) => {
  const { stateDir, runDir, open } = managerDirs(t);
  // Watch every 50 ms; a restart a minute away, so the dead haproxy stays dead.
  const m = await open({ watchIntervalMs: 50, restartBackoff: { initialMs: 60_000, maxMs: 60_000 } });
  const checks = new HaproxyCheckScripts(stateDir, async () => undefined);
  const unfollow = await checks.follow(m, 60_000);
  t.after(unfollow);
  const lbId = randomUUID();
  await m.putConfig(randomUUID(), lbId, octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), members: [], returnBody: "x" }] }).text);
  assert.deepEqual(checks.wantedIds(), [], "stored, never started: not required");
  await m.control(lbId, "start");
  await until("required after start", () => checks.wantedIds().length === 1);
  const pid = (await m.status(lbId)).masterPid;
  process.kill(pid, "SIGKILL");
  await until("the death noticed", () => !m.get(lbId)!.running && !processRuns(pid));
  await sleep(100);
  assert.deepEqual(checks.wantedIds(), [lbId], "died: still required, the check keeps failing");
  await m.control(lbId, "stop");
  await until("released by the stop", () => checks.wantedIds().length === 0, 1000);
  await until("the record follows", () => readFileSync(join(stateDir, "keepalived", "haproxy-wanted"), "utf8") === "", 1000);
});
