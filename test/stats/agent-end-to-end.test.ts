// End to end with the agent's own load balancer manager as the catalog (no
// test catalog): upload, start, traffic, reload, stop and delete through
// the LoadBalancer RPCs while WatchStats streams are open and the heartbeat
// goes to a UDP socket acting as the health manager.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { createSocket } from "node:dgram";
import type { AddressInfo } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { StatsService, WatchMode, type WatchStatsResponse } from "../../src/gen/amphora/v1/stats_pb.js";
import { decodeHeartbeat } from "../../src/heartbeat/message.js";
import { startTestAgent } from "../support/agent.js";
import { freePort, httpGet, killHaproxiesUnder, octaviaConfig, startBackend } from "../support/haproxy.js";
import { until } from "./fixture.js";

test("stats, streams and heartbeat follow load balancers driven through the agent's RPCs", async (t) => {
  const runDir = mkdtempSync(join(tmpdir(), "amt-st-"));
  const hm = createSocket("udp4");
  const datagrams: Buffer[] = [];
  hm.on("message", (m) => datagrams.push(m));
  await new Promise<void>((r) => hm.bind(0, "127.0.0.1", () => r()));
  const agent = await startTestAgent({
    overrides: { heartbeatTargets: [{ host: "127.0.0.1", port: (hm.address() as AddressInfo).port }], heartbeatIntervalS: 1, heartbeatKey: "hm-key" },
  });
  const backend = await startBackend("b");
  t.after(async () => {
    // The agent first (it restarts a haproxy that dies while it runs), then haproxy.
    await agent.cleanup();
    await killHaproxiesUnder(agent.stateDir);
    await backend.close();
    hm.close();
    rmSync(runDir, { recursive: true, force: true });
  });
  const lbs = agent.client(LoadBalancerService);
  const stats = agent.client(StatsService, "grpc");
  const ac = new AbortController();
  t.after(() => ac.abort());
  const collect = (mode: WatchMode, intervalMs: number) => {
    const got: WatchStatsResponse[] = [];
    void (async () => {
      try {
        for await (const m of stats.watchStats({ intervalMs, mode }, { signal: ac.signal })) got.push(m);
      } catch (e) {
        if (ConnectError.from(e).code !== Code.Canceled) throw e;
      }
    })();
    return got;
  };
  // CHANGES at 1 h: whatever shows up there came from events, not ticks.
  const changes = collect(WatchMode.CHANGES, 3_600_000);
  const snaps = collect(WatchMode.SNAPSHOTS, 200);
  await until("first messages", () => (changes.length && snaps.length) || undefined);
  assert.equal(changes[0]!.loadBalancers.length, 0);

  const lbId = randomUUID();
  const port = await freePort();
  const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port, members: [{ port: backend.port }] }] });
  const listenerId = cfg.listeners[0]!.id;
  await lbs.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.text });
  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  const up = await until("LB running in CHANGES", () => changes.find((m) => m.loadBalancers.some((l) => l.lbId === lbId && l.running)), 5000);
  assert.equal(up.statusOnly, true);

  for (let i = 0; i < 4; i++) assert.equal((await httpGet(port)).status, 200);
  await until("4 sessions in snapshots", () => snaps.find((m) => m.loadBalancers.find((l) => l.lbId === lbId)?.listeners[0]?.totals?.totalSessions === 4n));

  // A real reload (counters restart in the new worker); the same config would otherwise apply nothing (issue 13).
  agent.ctx.lbs.setRuntimeApply({ enabled: false });
  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD });
  for (let i = 0; i < 2; i++) assert.equal((await httpGet(port)).status, 200);
  const after = await until("6 sessions after the reload", () =>
    snaps.find((m) => m.loadBalancers.find((l) => l.lbId === lbId)?.listeners[0]?.totals?.totalSessions === 6n));
  assert.ok(after.loadBalancers.find((l) => l.lbId === lbId)!.reloads >= 1n);
  for (const m of snaps) {
    for (const l of m.loadBalancers) assert.ok((l.listeners[0]?.delta?.totalSessions ?? 0n) >= 0n);
  }

  // The health manager saw the same 6 sessions (sum of deltas).
  const sum = () => datagrams.map((d) => decodeHeartbeat(d, "hm-key"))
    .reduce((n, m) => n + (m.listeners[listenerId]?.stats.totconns ?? 0), 0);
  await until("heartbeats report 6", () => (sum() === 6 ? true : undefined), 8000);

  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.STOP, stopTimeoutMs: 1000 });
  await until("stopped in CHANGES", () => changes.find((m) => m.loadBalancers.some((l) => l.lbId === lbId && !l.running)), 5000);

  await lbs.deleteLoadBalancer({ lbId });
  await until("removed in CHANGES", () => changes.find((m) => m.removedLbIds.includes(lbId)), 5000);
  await until("removed in SNAPSHOTS", () => snaps.find((m) => m.removedLbIds.includes(lbId)), 5000);
});
