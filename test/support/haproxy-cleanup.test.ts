// The shared test helper that cleans up haproxy must find every process a
// test started, even when the state folder is already gone.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { LoadBalancerManager } from "../../src/haproxy/manager.js";
import { freePort, octaviaConfig, killHaproxiesUnder, processRuns, httpGet } from "./haproxy.js";

test("killHaproxiesUnder finds masters by pid file and, once the folder is gone, by command line", async (t) => {
  const dirs = [mkdtempSync(join(tmpdir(), "amt-kill-")), mkdtempSync(join(tmpdir(), "amt-kill-"))];
  t.after(async () => {
    for (const d of dirs) {
      await killHaproxiesUnder(d);
      rmSync(d, { recursive: true, force: true });
    }
  });
  const pids: number[] = [];
  for (const stateDir of dirs) {
    const m = await LoadBalancerManager.open({ stateDir, certDir: join(stateDir, "certs"), settings: () => ({ haproxyCmd: "/usr/sbin/haproxy", netns: "" }), watchIntervalMs: 0 });
    const lbId = randomUUID();
    const port = await freePort();
    await m.putConfig(randomUUID(), lbId, octaviaConfig({ lbId, runDir: stateDir, listeners: [{ port, members: [], returnBody: "k" }] }).text);
    await m.control(lbId, "start");
    assert.equal((await httpGet(port)).body, "k");
    pids.push((await m.status(lbId)).masterPid);
    m.close();
  }
  assert.ok(pids.every(processRuns));
  assert.ok((await killHaproxiesUnder(dirs[0]!)).includes(pids[0]!));
  assert.equal(processRuns(pids[0]!), false);
  assert.ok(processRuns(pids[1]!), "another folder's haproxy is left alone");
  rmSync(dirs[1]!, { recursive: true, force: true });
  assert.ok((await killHaproxiesUnder(dirs[1]!)).includes(pids[1]!));
  assert.equal(processRuns(pids[1]!), false);
});
