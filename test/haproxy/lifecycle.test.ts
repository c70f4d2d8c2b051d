// Lifecycle details: catalog events, noticing a haproxy that died on its
// own, graceful and bounded stop, load balancers in parallel, and haproxy
// started inside a configured network namespace.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { LoadBalancerManager } from "../../src/haproxy/manager.js";
import type { LoadBalancerEvent } from "../../src/haproxy/catalog.js";
import { freePort, startBackend, octaviaConfig, httpGet, killHaproxiesUnder, processRuns } from "../support/haproxy.js";
import { startTestAgent } from "../support/agent.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { run, runChecked } from "../../src/system/exec.js";

function tempDirs(t: import("node:test").TestContext) {
  const stateDir = mkdtempSync(join(tmpdir(), "amt-life-"));
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  t.after(async () => {
    // Stop watchers first so nothing writes into the folders being removed.
    await Promise.all([...managers].map((m) => m.close()));
    await killHaproxiesUnder(stateDir);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  });
  return { stateDir, runDir };
}

const managers = new Set<LoadBalancerManager>();
const openManager = async (stateDir: string, watchIntervalMs = 0, restartAfterMs = 1000) => {
  const m = await LoadBalancerManager.open({
    stateDir, certDir: join(stateDir, "certs"), settings: () => ({ haproxyCmd: "/usr/sbin/haproxy", netns: "" }), watchIntervalMs,
    restartBackoff: { initialMs: restartAfterMs, maxMs: restartAfterMs },
  });
  managers.add(m);
  return m;
};

test("catalog: refs and events follow created/started/reloaded/stopped/deleted; a haproxy that dies is noticed", async (t) => {
  const { stateDir, runDir } = tempDirs(t);
  // The restart of a haproxy that died is tested in restart.test.ts; here it must not come before the checks.
  const m = await openManager(stateDir, 50, 60_000);
  t.after(() => m.close());
  const events: LoadBalancerEvent[] = [];
  m.on("event", (e) => events.push(e));
  const lbId = randomUUID();
  const port = await freePort();
  const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "x" }, { port: await freePort(), mode: "tcp", members: [{ port: 9 }] }] });
  await m.putConfig(randomUUID(), lbId, cfg.text);
  assert.deepEqual(m.get(lbId), { lbId, masterSocket: join(stateDir, "lb", lbId, "master.sock"), running: false, listenerIds: cfg.listeners.map((l) => l.id) });
  await m.control(lbId, "start");
  assert.equal(m.get(lbId)!.running, true);
  await m.control(lbId, "reload");
  await m.control(lbId, "stop");
  assert.equal(m.get(lbId)!.running, false);
  await m.control(lbId, "reload"); // reloading a stopped load balancer starts it (as Octavia)
  assert.deepEqual(events.map((e) => e.type), ["created", "started", "reloaded", "stopped", "started"]);
  assert.equal(await m.runningCount(), 1);
  assert.deepEqual(await m.listenerIds(), cfg.listeners.map((l) => l.id));

  // haproxy killed behind the agent's back.
  const pid = (await m.status(lbId)).masterPid;
  process.kill(pid, "SIGKILL");
  // The watch marks it not running, records the exit, then emits "stopped":
  // wait for the event, the last of those steps.
  const deadline = Date.now() + 10_000;
  while (events.at(-1)!.type !== "stopped" && Date.now() < deadline) await sleep(20);
  assert.equal(events.at(-1)!.type, "stopped");
  assert.equal(m.get(lbId)!.running, false);
  assert.equal((await m.listListeners())[0]!.status, "STOPPED");
  assert.equal((await m.status(lbId)).restartPending, true, "wanted running: a restart is planned");

  await m.delete(lbId);
  assert.equal(m.get(lbId), undefined);
  await m.delete(lbId);
  assert.deepEqual(events.map((e) => e.type).slice(-1), ["deleted"]);
  assert.equal(m.get(lbId), undefined);
  assert.deepEqual(m.list(), []);
});

test("stop is graceful (in-flight request finishes) and bounded (stop_timeout_ms, then SIGTERM)", async (t) => {
  const { stateDir, runDir } = tempDirs(t);
  const backend = await startBackend("slow");
  t.after(() => backend.close());
  const m = await openManager(stateDir);
  t.after(() => m.close());
  const lbId = randomUUID();
  const port = await freePort();
  await m.putConfig(randomUUID(), lbId, octaviaConfig({ lbId, runDir, listeners: [{ port, members: [{ port: backend.port }] }] }).text);
  await m.control(lbId, "start");

  const slow = httpGet(port, "/?delay=600", "127.0.0.1", 5000);
  while (backend.hits === 0) await sleep(5);
  const r = await m.control(lbId, "stop", { stopTimeoutMs: 5000 });
  assert.equal(r.details, "haproxy stopped (graceful)");
  assert.equal((await slow).body, "slow");
  await assert.rejects(httpGet(port));

  await m.control(lbId, "start");
  const hits = backend.hits;
  const stuck = httpGet(port, "/?delay=5000", "127.0.0.1", 10_000).then(() => undefined, (e: Error) => e);
  while (backend.hits === hits) await sleep(5);
  const t0 = Date.now();
  const r2 = await m.control(lbId, "stop", { stopTimeoutMs: 200 });
  assert.equal(r2.details, "haproxy stopped (terminated)");
  assert.ok(Date.now() - t0 < 4000);
  assert.ok((await stuck) instanceof Error, "the request that outlived the timeout was cut");
  assert.equal((await m.control(lbId, "stop")).details, "haproxy was not running");
});

test("different load balancers proceed in parallel: a slow stop of one does not hold up the other", async (t) => {
  const { stateDir, runDir } = tempDirs(t);
  const backend = await startBackend("slow");
  t.after(() => backend.close());
  const m = await openManager(stateDir);
  t.after(() => m.close());
  const [lbA, lbB] = [randomUUID(), randomUUID()];
  const [pa, pb] = [await freePort(), await freePort()];
  await m.putConfig(randomUUID(), lbA, octaviaConfig({ lbId: lbA, runDir, listeners: [{ port: pa, members: [{ port: backend.port }] }] }).text);
  await m.putConfig(randomUUID(), lbB, octaviaConfig({ lbId: lbB, runDir, listeners: [{ port: pb, members: [], returnBody: "b1" }] }).text);
  await Promise.all([m.control(lbA, "start"), m.control(lbB, "start")]);
  // 6 s: B's upload (haproxy -c) and reload must fit in it also on a
  // loaded machine (with 3 s this test failed once in a full run next to
  // other helpers' tests; the cause was not captured).
  const slow = httpGet(pa, "/?delay=6000", "127.0.0.1", 12_000);
  while (backend.hits === 0) await sleep(5);
  const order: string[] = [];
  const stopA = m.control(lbA, "stop", { stopTimeoutMs: 12_000 }).then(() => order.push("stop A"));
  // Queued behind the stop of A (same load balancer).
  const statusA = m.putConfig(randomUUID(), lbA, octaviaConfig({ lbId: lbA, runDir, listeners: [{ port: pa, members: [], returnBody: "a2" }] }).text).then(() => order.push("put A"));
  const reloadB = (async () => {
    await m.putConfig(randomUUID(), lbB, octaviaConfig({ lbId: lbB, runDir, listeners: [{ port: pb, members: [], returnBody: "b2" }] }).text);
    await m.control(lbB, "reload");
    order.push("reload B");
  })();
  await Promise.all([stopA, statusA, reloadB, slow]);
  assert.deepEqual(order, ["reload B", "stop A", "put A"]);
  assert.equal((await httpGet(pb)).body, "b2");
});

test("with a network namespace configured, haproxy runs inside it (ip netns exec)", async (t) => {
  const ns = `amt-${randomBytes(4).toString("hex")}`;
  await runChecked("ip", ["netns", "add", ns]);
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  const agent = await startTestAgent({ overrides: { netns: ns } });
  t.after(async () => {
    // The agent first (it restarts a haproxy that dies while it runs), then haproxy.
    await agent.cleanup();
    await killHaproxiesUnder(agent.stateDir);
    await run("ip", ["netns", "del", ns]);
    rmSync(runDir, { recursive: true, force: true });
  });
  await runChecked("ip", ["link", "set", "lo", "up"], { netns: ns });
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const port = await freePort();
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "inside" }] }).text });
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  const inside = await runChecked("curl", ["-sS", "--max-time", "3", `http://127.0.0.1:${port}/`], { netns: ns });
  assert.equal(inside.stdout, "inside");
  await assert.rejects(httpGet(port), "not bound in the agent's namespace");
  // The master CLI socket is a file: reachable from the agent's namespace, so reloads work.
  // (A real reload: the same config would otherwise apply nothing, issue 13.)
  agent.ctx.lbs.setRuntimeApply({ enabled: false });
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD });
  const st = (await lb.getLoadBalancerStatus({ lbId })).status!;
  assert.equal(st.reloads, 1);
  assert.ok(processRuns(st.masterPid));
  assert.deepEqual((await lb.listListeners({})).listeners.map((l) => l.status), ["ACTIVE"]);
});

test("an action on a load balancer whose haproxy died unnoticed sees it: reload starts it again", async (t) => {
  const { stateDir, runDir } = tempDirs(t);
  const m = await openManager(stateDir, 0); // no watcher: only the action can notice
  t.after(() => m.close());
  const events: string[] = [];
  m.on("event", (e) => events.push(e.type));
  const lbId = randomUUID();
  const port = await freePort();
  await m.putConfig(randomUUID(), lbId, octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "again" }] }).text);
  await m.control(lbId, "start");
  const pid = (await m.status(lbId)).masterPid;
  process.kill(pid, "SIGKILL");
  while (processRuns(pid)) await sleep(5);
  assert.equal((await m.status(lbId)).state, "STOPPED");
  const r = await m.control(lbId, "reload");
  assert.match(r.details, /haproxy started/);
  assert.equal((await httpGet(port)).body, "again");
  assert.deepEqual(events, ["created", "started", "stopped", "started"]);
});
