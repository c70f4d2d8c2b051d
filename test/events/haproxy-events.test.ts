// WatchEvents with a real agent and real haproxy: every load balancer event
// kind comes from what really happened (uploads, start, reload, a reload
// that fails and is rolled back, a kill -9 the supervisor repairs, old
// workers held by a connection, stop, delete).
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { createServer, connect, type Server, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { LoadBalancerAction, LoadBalancerService } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { ApplyMethod, ConfigTarget, EventKind, EventService, RestartCause } from "../../src/gen/amphora/v1/events_pb.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { freePort, killHaproxiesUnder, octaviaConfig, processRuns, startBackend } from "../support/haproxy.js";
import { assertContiguous, kindIs, readEvents } from "./support.js";

async function agentFor(t: TestContext): Promise<{ agent: TestAgent; runDir: string }> {
  const runDir = mkdtempSync(join(tmpdir(), "amt-ev-run-"));
  t.after(() => rmSync(runDir, { recursive: true, force: true }));
  const agent = await startTestAgent({
    restartBackoff: { initialMs: 200, maxMs: 2000 },
    lingerWatch: { afterMs: 300, everyMs: 300 },
  });
  t.after(async () => {
    await agent.cleanup();
    await killHaproxiesUnder(agent.stateDir);
  });
  return { agent, runDir };
}

test("load balancer events: stored, rejected, applied (start, reload), reload failed + rolled back, exited, restarted, stopped, deleted", async (t) => {
  const { agent, runDir } = await agentFor(t);
  const backend = await startBackend("a");
  t.after(() => backend.close());
  const squatter: Server = createServer();
  t.after(() => new Promise<void>((r) => squatter.close(() => r())));
  const lbs = agent.client(LoadBalancerService);
  const r = readEvents(agent.client(EventService));
  t.after(() => r.stop());
  await r.until("stream start", () => true, 100).catch(() => undefined);
  while (!r.start) await sleep(10);
  assert.equal(r.start.epoch, agent.ctx.events.epoch);

  const lbId = randomUUID();
  const port = await freePort();
  const amphoraId = agent.config.amphoraId;
  const spec = { lbId, runDir, listeners: [{ port, members: [{ port: backend.port }] }] };
  const v1 = octaviaConfig(spec).text;
  const put1 = await lbs.putConfig({ amphoraId, lbId, config: v1 });
  const stored = await r.until("config_stored v1", kindIs(EventKind.CONFIG_STORED, lbId));
  assert.equal(stored.payload.case, "configStored");
  if (stored.payload.case === "configStored") {
    assert.deepEqual([stored.payload.value.target, stored.payload.value.version, stored.payload.value.md5], [ConfigTarget.HAPROXY, 1n, put1.md5]);
  }
  // The same config again changes nothing: no event.
  await lbs.putConfig({ amphoraId, lbId, config: v1 });

  await assert.rejects(lbs.putConfig({ amphoraId, lbId, config: v1.replace("balance roundrobin", "balance no-such-algorithm") }));
  const rejected = await r.until("config_rejected", kindIs(EventKind.CONFIG_REJECTED, lbId));
  assert.ok(rejected.payload.case === "configRejected" && rejected.payload.value.code === "CONFIG_INVALID" && /balance only supports/.test(rejected.payload.value.details), rejected.summary);

  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  const started = await r.until("applied by start", kindIs(EventKind.CONFIG_APPLIED, lbId));
  assert.ok(started.payload.case === "configApplied" && started.payload.value.method === ApplyMethod.START && started.payload.value.version === 1n);

  const v2 = octaviaConfig({ ...spec, listeners: [{ ...spec.listeners[0]!, members: [{ port: backend.port }, { port: backend.port }] }] }).text;
  await lbs.putConfig({ amphoraId, lbId, config: v2 });
  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD });
  const reloaded = await r.until("applied by reload", (e) => kindIs(EventKind.CONFIG_APPLIED, lbId)(e) && e.payload.case === "configApplied" && e.payload.value.method === ApplyMethod.RELOAD);
  assert.ok(reloaded.payload.case === "configApplied" && reloaded.payload.value.version === 2n);

  // A config haproxy -c accepts but a reload cannot load: its second port is taken.
  const taken = await freePort();
  await new Promise<void>((res) => squatter.listen(taken, "127.0.0.1", () => res()));
  const v3 = octaviaConfig({ ...spec, listeners: [spec.listeners[0]!, { port: taken, members: [{ port: backend.port }] }] }).text;
  await lbs.putConfig({ amphoraId, lbId, config: v3 });
  await assert.rejects(lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD }));
  const failed = await r.until("reload_failed", kindIs(EventKind.RELOAD_FAILED, lbId));
  assert.equal(failed.payload.case, "reloadFailed");
  if (failed.payload.case === "reloadFailed") {
    const f = failed.payload.value;
    assert.deepEqual([f.failedVersion, f.rolledBack, f.restoredVersion, f.storedVersion], [3n, true, 2n, 4n]);
    assert.ok(f.reason);
  }

  // kill -9: the supervisor notices, says it will restart, and does.
  const st = await lbs.getLoadBalancerStatus({ lbId });
  process.kill(st.status!.masterPid, "SIGKILL");
  const exited = await r.until("haproxy_exited", kindIs(EventKind.HAPROXY_EXITED, lbId));
  assert.ok(exited.payload.case === "haproxyExited" && exited.payload.value.restartPlanned && exited.payload.value.restartInMs > 0);
  const restarted = await r.until("haproxy_restarted", kindIs(EventKind.HAPROXY_RESTARTED, lbId));
  assert.ok(restarted.payload.case === "haproxyRestarted" && restarted.payload.value.cause === RestartCause.EXITED && restarted.payload.value.restarts === 1);
  assert.equal(restarted.payload.value.version, 4n);

  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.STOP });
  const stopped = await r.until("haproxy_stopped", kindIs(EventKind.HAPROXY_STOPPED, lbId));
  assert.ok(stopped.payload.case === "haproxyStopped" && !stopped.payload.value.deleted);
  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  await lbs.deleteLoadBalancer({ lbId });
  await r.until("load_balancer_deleted", kindIs(EventKind.LOAD_BALANCER_DELETED, lbId));
  const stops = r.events.filter(kindIs(EventKind.HAPROXY_STOPPED, lbId));
  assert.ok(stops.at(-1)!.payload.case === "haproxyStopped" && (stops.at(-1)!.payload.value as { deleted: boolean }).deleted);

  // Every event once, numbered without gaps, in the agent's epoch, with a summary.
  assertContiguous(r.events, r.start.headSeq);
  for (const e of r.events) {
    assert.equal(e.epoch, r.start.epoch);
    assert.ok(e.summary && e.time, e.summary);
  }
  assert.deepEqual(
    r.events.map((e) => EventKind[e.kind]),
    ["CONFIG_STORED", "CONFIG_REJECTED", "CONFIG_APPLIED", "CONFIG_STORED", "CONFIG_APPLIED", "CONFIG_STORED", "RELOAD_FAILED",
      "HAPROXY_EXITED", "HAPROXY_RESTARTED", "HAPROXY_STOPPED", "CONFIG_APPLIED", "HAPROXY_STOPPED", "LOAD_BALANCER_DELETED"],
  );
});

test("lingering_workers: an old worker held by an open connection after a reload is reported, and its end too", async (t) => {
  const { agent, runDir } = await agentFor(t);
  // A TCP member that keeps every connection open until the test ends it.
  const held = new Set<Socket>();
  const member = createServer((s) => {
    held.add(s);
    s.on("error", () => {});
  });
  await new Promise<void>((res) => member.listen(0, "127.0.0.1", () => res()));
  t.after(() => new Promise<void>((res) => {
    for (const s of held) s.destroy();
    member.close(() => res());
  }));
  const lbs = agent.client(LoadBalancerService);
  const r = readEvents(agent.client(EventService), { filter: { kinds: [EventKind.LINGERING_WORKERS] } });
  t.after(() => r.stop());

  const lbId = randomUUID();
  const port = await freePort();
  const memberPort = (member.address() as { port: number }).port;
  const spec = { lbId, runDir, hardStopAfter: "60s", listeners: [{ port, mode: "tcp" as const, members: [{ port: memberPort }] }] };
  const amphoraId = agent.config.amphoraId;
  await lbs.putConfig({ amphoraId, lbId, config: octaviaConfig(spec).text });
  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  const client = connect(port, "127.0.0.1");
  client.on("error", () => {});
  t.after(() => client.destroy());
  // Through haproxy to the member: the first worker now holds a connection.
  const deadline = Date.now() + 10_000;
  while (!held.size) {
    assert.ok(Date.now() < deadline, "connection did not reach the member");
    await sleep(10);
  }
  await lbs.putConfig({ amphoraId, lbId, config: octaviaConfig(spec).text.replace("maxconn 4096", "maxconn 4000") });
  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD });
  const lingering = await r.until("lingering workers", (e) => e.payload.case === "lingeringWorkers" && e.payload.value.count > 0);
  assert.ok(lingering.payload.case === "lingeringWorkers");
  const pids = lingering.payload.value.pids;
  assert.equal(pids.length, 1);
  assert.ok(processRuns(pids[0]!), "the reported old worker runs");
  const status = await lbs.getLoadBalancerStatus({ lbId });
  assert.deepEqual(status.status!.workers.filter((w) => w.old).map((w) => w.pid), pids);

  // The connection ends: the old worker leaves, and that is reported too.
  client.destroy();
  for (const s of held) s.destroy();
  const gone = await r.until("old workers gone", (e) => e.payload.case === "lingeringWorkers" && e.payload.value.count === 0);
  assert.ok(gone.seq > lingering.seq);
});

test("haproxy_restarted (AGENT_START): a load balancer that died while no agent ran is started by the next agent, in its new epoch", async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), "amt-ev-resume-"));
  const runDir = mkdtempSync(join(tmpdir(), "amt-ev-run-"));
  let agent = await startTestAgent({ stateDir });
  t.after(async () => {
    await agent.cleanup();
    await killHaproxiesUnder(stateDir);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  });
  const lbId = randomUUID();
  const port = await freePort();
  const lbs = () => agent.client(LoadBalancerService);
  await lbs().putConfig({ amphoraId: agent.config.amphoraId, lbId, config: octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "x" }] }).text });
  await lbs().controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  const firstEpoch = agent.ctx.events.epoch;
  await agent.cleanup();
  // haproxy dies while no agent runs (a reboot would do the same).
  const killed = await killHaproxiesUnder(stateDir);
  assert.ok(killed.length > 0);
  agent = await startTestAgent({ stateDir });
  assert.notEqual(agent.ctx.events.epoch, firstEpoch);
  // From the first event of the new epoch: the agent's own start of it.
  const r = readEvents(agent.client(EventService), { sinceSeq: 0n, epoch: agent.ctx.events.epoch });
  t.after(() => r.stop());
  const e = await r.until("haproxy_restarted at agent start", kindIs(EventKind.HAPROXY_RESTARTED, lbId));
  assert.ok(e.payload.case === "haproxyRestarted" && e.payload.value.cause === RestartCause.AGENT_START && e.payload.value.version === 1n);
  assert.equal(e.seq, 1n);
  assert.equal(e.epoch, agent.ctx.events.epoch);
});
