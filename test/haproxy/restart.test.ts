// A haproxy the controller wants running comes back on its own: killed
// (-9) it is started again with a growing delay, a start that fails is
// retried, an explicit stop ends all that, and an agent of an older version
// (metadata without the wanted state) is resumed from what it served.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { createServer } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { LoadBalancerManager } from "../../src/haproxy/manager.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { freePort, httpGet, killHaproxiesUnder, octaviaConfig, processRuns, waitForBody } from "../support/haproxy.js";
import { agentWithRunDir, managerDirs } from "../support/lb-test.js";

async function until<T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * A manager that watches every 50 ms and restarts with the given backoff.
 * Opened through managerDirs' `open`, so its after-hook closes the manager
 * before it kills haproxy and removes the folders (node:test runs after-hooks
 * in the order they were added: a hook added here would run after that
 * clean-up, leaving the manager free to restart haproxy or write into a
 * removed folder in between).
 */
function openSupervised(t: import("node:test").TestContext, restartBackoff: { initialMs: number; maxMs: number }) {
  const d = managerDirs(t);
  return { ...d, open: () => d.open({ watchIntervalMs: 50, restartBackoff }) };
}

/**
 * kill -9 of the master; returns once its workers are gone too (they notice
 * the master's death a moment later and until then still hold the ports,
 * which would make a start right after fail with "Address already in use").
 */
async function killMaster(m: LoadBalancerManager, lbId: string): Promise<number> {
  const st = await m.status(lbId);
  const pid = st.masterPid;
  assert.ok(pid > 0);
  process.kill(pid, "SIGKILL");
  const deadline = Date.now() + 10_000;
  for (const p of [pid, ...st.workers.map((w) => w.pid)]) {
    while (processRuns(p)) {
      assert.ok(Date.now() < deadline, `haproxy process ${p} still runs 10 s after its master was killed`);
      await sleep(2);
    }
  }
  return pid;
}

test("kill -9 of the master: it is started again (no RPC), twice with a doubled delay; history, events and counters say so", async (t) => {
  // maxMs well above the time between the first restart and the second
  // kill being noticed: an exit within 2 × maxMs of a start is a crash loop
  // (the delay doubles), and a busy machine must not turn it into a new first exit.
  const { runDir, open } = openSupervised(t, { initialMs: 200, maxMs: 10_000 });
  const m = await open();
  const events: string[] = [];
  m.on("event", (e) => events.push(e.type));
  const { lbId, port } = await oneListenerLb(m, runDir, "back");
  for (const [n, delay] of [[1, "0.2 s"], [2, "0.4 s"]] as const) {
    const old = await killMaster(m, lbId);
    // Done once recorded (haproxy serves a moment before the start returns).
    const st = await until(`restart ${n}`, async () => {
      const s = await m.status(lbId);
      return s.state === "RUNNING" && s.masterPid !== old && s.recentActions[0]!.action === "START" ? s : undefined;
    });
    assert.equal((await httpGet(port)).body, "back");
    assert.equal(st.restarts, n);
    assert.ok(st.lastExitAtMs > 0);
    assert.equal(st.wanted, "running");
    const [start, exited] = st.recentActions;
    assert.equal(start!.action, "START");
    assert.ok(start!.ok);
    assert.match(start!.details, new RegExp(`automatic restart ${n}\\)`));
    assert.equal(exited!.action, "EXITED");
    // The second exit came right after the first restart: a crash loop.
    assert.match(exited!.details, new RegExp(`restarting it in ${delay.replace(".", "\\.")}`));
  }
  await until("the last event", async () => (events.length >= 6 ? true : undefined));
  assert.deepEqual(events, ["created", "started", "stopped", "started", "stopped", "started"]);
  assert.deepEqual((await m.listListeners()).map((l) => l.status), ["ACTIVE"]);
});

test("a stop while a restart is planned cancels it; a stopped load balancer is never restarted", async (t) => {
  // The restart is planned 5 s out: the stop below takes the lock long
  // before it, even on a busy machine, so it is the stop that cancels it.
  const { runDir, open } = openSupervised(t, { initialMs: 5000, maxMs: 10_000 });
  const m = await open();
  const { lbId, port } = await oneListenerLb(m, runDir, "x");
  await killMaster(m, lbId);
  await until("the planned restart", async () => ((await m.status(lbId)).restartPending ? true : undefined));
  await m.control(lbId, "stop");
  assert.equal((await m.status(lbId)).restartPending, false, "the stop cancelled the planned restart");
  await sleep(1500);
  const st = await m.status(lbId);
  assert.equal(st.state, "STOPPED");
  assert.equal(st.wanted, "stopped");
  assert.equal(st.restartPending, false);
  assert.equal(st.restarts, 0);
  assert.equal(st.recentActions[0]!.action, "STOP");
  await assert.rejects(httpGet(port));
  // Explicitly started and stopped again: nothing comes back either.
  await m.control(lbId, "start");
  await m.control(lbId, "stop");
  await sleep(800);
  assert.equal((await m.status(lbId)).state, "STOPPED");
});

test("a restart that fails (port taken) is retried with the backoff until it works; one history entry for the failures", async (t) => {
  // 1.5 s for the squatter to take the port before the first restart (room
  // for a busy machine); then 3 s.
  const { runDir, open } = openSupervised(t, { initialMs: 1500, maxMs: 10_000 });
  const m = await open();
  const { lbId, port } = await oneListenerLb(m, runDir, "again");
  await killMaster(m, lbId);
  // Someone else takes the port before the restart (the config has noreuseport).
  const free = await squat(t, port);
  await until("two failed restarts", async () => {
    const s = await m.status(lbId);
    return s.restartPending && s.recentActions[0]!.action === "START" && !s.recentActions[0]!.ok && Date.now() - s.recentActions[0]!.finishedAtMs > 1200 ? s : undefined;
  });
  let st = await m.status(lbId);
  assert.match(st.recentActions[0]!.details, /^restart start failed: [\s\S]*Address already in use[\s\S]*trying again in 3 s/);
  assert.equal(st.recentActions[1]!.action, "EXITED");
  await free();
  st = await until("the restart once the port is free", async () => {
    const s = await m.status(lbId);
    return s.state === "RUNNING" ? s : undefined;
  });
  assert.equal((await httpGet(port)).body, "again");
  assert.equal(st.restarts, 1);
  assert.deepEqual(st.recentActions.slice(0, 3).map((a) => `${a.action} ${a.ok}`), ["START true", "START false", "EXITED false"]);
});

/** Stores a config of one listener on a fresh port answering `body`; started unless `start` is false. */
async function oneListenerLb(m: LoadBalancerManager, runDir: string, body: string, start = true): Promise<{ lbId: string; port: number }> {
  const lbId = randomUUID();
  const port = await freePort();
  await m.putConfig(randomUUID(), lbId, octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: body }] }).text);
  if (start) await m.control(lbId, "start");
  return { lbId, port };
}

/** Takes `port` on 127.0.0.1 as soon as it is free (a killed haproxy's worker may hold it a moment longer). */
async function squat(t: import("node:test").TestContext, port: number) {
  const squatter = createServer();
  t.after(() => squatter.close());
  await until("the port to be ours", () => new Promise<true | undefined>((r) => {
    squatter.once("error", () => r(undefined));
    squatter.listen({ port, host: "127.0.0.1", exclusive: true }, () => r(true));
  }), 2000);
  return () => new Promise<void>((r) => squatter.close(() => r()));
}

/** meta.json becomes a folder: every metadata write fails (as on a full disk). */
function breakMetaWrites(stateDir: string, lbId: string): void {
  const metaFile = join(stateDir, "lb", lbId, "meta.json");
  rmSync(metaFile);
  mkdirSync(metaFile);
}

test("metadata writes failing (full disk): a failed restart is still retried, and haproxy comes back once the port is free", async (t) => {
  // 1.5 s for the squatter to take the port before the first restart.
  const { stateDir, runDir, open } = openSupervised(t, { initialMs: 1500, maxMs: 10_000 });
  const m = await open();
  const events: string[] = [];
  m.on("event", (e) => events.push(e.type));
  const { lbId, port } = await oneListenerLb(m, runDir, "disk");
  breakMetaWrites(stateDir, lbId);
  await killMaster(m, lbId);
  const free = await squat(t, port);
  const failedOnce = await until("a failed restart", async () => {
    const s = await m.status(lbId);
    return s.recentActions[0]!.action === "START" && !s.recentActions[0]!.ok ? s : undefined;
  });
  assert.match(failedOnce.recentActions[0]!.details, /Address already in use/);
  // The failure's metadata write failed too: the retry must be planned anyway.
  assert.equal(failedOnce.restartPending, true, "a retry is planned although the metadata could not be written");
  await free();
  const st = await until("the restart once the port is free", async () => {
    const s = await m.status(lbId);
    return s.state === "RUNNING" ? s : undefined;
  });
  assert.equal((await httpGet(port)).body, "disk");
  assert.equal(st.restarts, 1);
  // Listeners (the keepalived check script) hear of the exit and the restart although nothing could be stored.
  await until("the last event", async () => (events.length >= 4 ? true : undefined));
  assert.deepEqual(events, ["created", "started", "stopped", "started"]);
});

test("metadata writes failing: a start the controller asked for fails with the start error, not the write error", async (t) => {
  const { stateDir, runDir, open } = openSupervised(t, { initialMs: 1000, maxMs: 10_000 });
  const m = await open();
  const { lbId, port } = await oneListenerLb(m, runDir, "x", false);
  await squat(t, port);
  breakMetaWrites(stateDir, lbId);
  await assert.rejects(m.control(lbId, "start"), (e: Error & { reason?: string }) => {
    assert.match(e.message, /Error starting haproxy/);
    assert.equal(e.reason, "HAPROXY_START_FAILED");
    return true;
  });
});

test("metadata of an older agent (no wanted state): what it served is resumed at start", async (t) => {
  const { stateDir, runDir, open } = openSupervised(t, { initialMs: 200, maxMs: 10_000 });
  let m = await open();
  const { lbId, port } = await oneListenerLb(m, runDir, "old");
  await m.close();
  await killMaster(m, lbId);
  const metaFile = join(stateDir, "lb", lbId, "meta.json");
  const meta = JSON.parse(readFileSync(metaFile, "utf8"));
  assert.equal(meta.wanted, "running");
  delete meta.wanted;
  writeFileSync(metaFile, JSON.stringify(meta));
  m = await open();
  assert.deepEqual(await m.resume(), { started: [lbId], failed: [] });
  assert.equal((await httpGet(port)).body, "old");
});

test("meta.json emptied by a power cut after a reload: a haproxy that ran (its pid file is left) is started at resume; a stopped one is not", async (t) => {
  const { stateDir, runDir, open } = openSupervised(t, { initialMs: 200, maxMs: 10_000 });
  let m = await open();
  const [lbA, lbB] = [randomUUID(), randomUUID()];
  const [portA, portB] = [await freePort(), await freePort()];
  await m.putConfig(randomUUID(), lbA, octaviaConfig({ lbId: lbA, runDir, listeners: [{ port: portA, members: [], returnBody: "power" }] }).text);
  await m.putConfig(randomUUID(), lbB, octaviaConfig({ lbId: lbB, runDir, listeners: [{ port: portB, members: [], returnBody: "off" }] }).text);
  await m.control(lbA, "start");
  await m.control(lbA, "reload"); // its metadata write is not fsynced
  await m.control(lbB, "start");
  await m.control(lbB, "stop");
  await m.close();
  // The power cut: haproxy gone (its pid file left behind), both meta.json empty.
  await killHaproxiesUnder(stateDir);
  assert.ok(existsSync(join(stateDir, "lb", lbA, "haproxy.pid")));
  for (const id of [lbA, lbB]) writeFileSync(join(stateDir, "lb", id, "meta.json"), "");
  m = await open();
  assert.equal((await m.status(lbA)).wanted, "running");
  assert.equal((await m.status(lbB)).wanted, "stopped");
  assert.deepEqual(await m.resume(), { started: [lbA], failed: [] });
  assert.equal((await httpGet(portA)).body, "power");
  await assert.rejects(httpGet(portB));
});

test("through the agent: kill -9 of the master and the load balancer serves again without any call", async (t) => {
  const { agent, runDir } = await agentWithRunDir(t);
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const port = await freePort();
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "self" }] }).text });
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  const pid = (await lb.getLoadBalancerStatus({ lbId })).status!.masterPid;
  process.kill(pid, "SIGKILL");
  while (processRuns(pid)) await sleep(2);
  await assert.rejects(httpGet(port));
  // Default watch (1 s) and first delay (1 s).
  await waitForBody(port, "self", 15_000, 50);
  const st = await until("the restart recorded", async () => {
    const s = (await lb.getLoadBalancerStatus({ lbId })).status!;
    return s.recentActions[0]!.action === "START" ? s : undefined;
  });
  assert.notEqual(st.masterPid, pid);
  assert.deepEqual(st.recentActions.slice(0, 2).map((a) => a.action), ["START", "EXITED"]);
  // The status says so in fields of its own.
  assert.equal(st.wanted, "running");
  assert.equal(st.restarts, 1);
  assert.ok(st.lastExitAtMs > 0n && st.lastExitAtMs <= BigInt(Date.now()));
  assert.equal(st.restartPending, false);
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.STOP });
  assert.equal((await lb.getLoadBalancerStatus({ lbId })).status!.wanted, "stopped");
});
