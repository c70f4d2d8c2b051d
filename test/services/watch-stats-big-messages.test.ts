// After a big message a WatchStats stream sends an empty one (a keepalive
// to clients), so that connect's pipeline lets go of the big message's
// bytes while the stream waits; small messages are not followed by one.
// The service generator is driven directly with a collector whose reads
// return generated show stat text (a mock of haproxy: a 2,000-member load
// balancer, no haproxy needed for what is tested here: message framing).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { StatsCollector } from "../../src/stats/collector.js";
import { WatchHub } from "../../src/stats/watch-hub.js";
import { ByteBudget } from "../../src/stats/byte-budget.js";
import { parseShowStat, type RawLbStats } from "../../src/stats/haproxy-stats.js";
import { silentLogger } from "../../src/log.js";
import { statsService, RELEASE_AFTER_BYTES } from "../../src/services/stats-service.js";
import { protocolKey } from "../../src/transport/interceptors.js";
import { fromBinary, toBinary } from "@bufbuild/protobuf";
import { LoadBalancerStatsSchema, WatchMode, WatchStatsResponseSchema, type WatchStatsResponse } from "../../src/gen/amphora/v1/stats_pb.js";
import type { Monitoring } from "../../src/metrics/monitoring.js";
import { TestCatalog } from "../stats/fixture.js";

const LB = "6f1c2c0e-0000-4000-8000-000000000001";

function csv(members: number, tick: number): string {
  const lines = ["# pxname,svname,stot,bin,lastchg,status,type,weight,check_status"];
  lines.push(`L1,FRONTEND,${tick},${tick},,OPEN,0,,`);
  for (let i = 0; i < members; i++) lines.push(`P1:L1,member-${String(i).padStart(30, "0")},${i},${i * 100},${tick},UP,2,1,L4OK`);
  lines.push(`P1:L1,BACKEND,${tick},${tick},${tick},UP,1,${members},`);
  return lines.join("\n") + "\n";
}

function service(members: number) {
  const catalog = new TestCatalog();
  catalog.put({ lbId: LB, masterSocket: "/nonexistent", running: true, listenerIds: ["L1"] });
  let tick = 0;
  const read = async (): Promise<RawLbStats> => ({ workerPid: "1", uptimeSec: ++tick, currentConnections: 0, table: parseShowStat(csv(members, tick)) });
  const collector = new StatsCollector({ catalog, logger: silentLogger, read });
  const hub = new WatchHub(collector, silentLogger);
  after(() => {
    hub.close();
    collector.close();
  });
  const m = { collector, hub, streamBudget: new ByteBudget(16 << 20), keepaliveMs: () => 0 } as unknown as Monitoring;
  return statsService(m);
}

async function firstMessages(members: number, mode: WatchMode, n: number): Promise<WatchStatsResponse[]> {
  const ac = new AbortController();
  const ctx = {
    signal: ac.signal,
    requestHeader: new Headers({ "content-type": "application/connect+proto" }),
    values: { get: (k: unknown) => (k === protocolKey ? "connect" : undefined) },
  };
  const it = service(members).watchStats!({ intervalMs: 100, mode, filter: undefined } as never, ctx as never) as AsyncGenerator<WatchStatsResponse>;
  const out: WatchStatsResponse[] = [];
  // The hub's timers do not keep a process alive (an agent's server does).
  const alive = setInterval(() => {}, 1000);
  try {
    for await (const r of it) {
      // As a client reads it: binary calls carry most fields pre-encoded.
      out.push(fromBinary(WatchStatsResponseSchema, toBinary(WatchStatsResponseSchema, r)));
      if (out.length >= n) break;
    }
  } finally {
    ac.abort();
    clearInterval(alive);
  }
  return out;
}

/** Bytes of the load balancers a message carries. */
const lbBytes = (r: WatchStatsResponse) => r.loadBalancers.reduce((n, lb) => n + toBinary(LoadBalancerStatsSchema, lb).length, 0);

test("SNAPSHOTS of a big load balancer: every snapshot is followed by an empty message in sequence", async () => {
  const got = await firstMessages(2000, WatchMode.SNAPSHOTS, 4);
  assert.ok(lbBytes(got[0]!) >= RELEASE_AFTER_BYTES, `the snapshot is big (${lbBytes(got[0]!)} bytes)`);
  assert.equal(got[0]!.full, true);
  assert.equal(lbBytes(got[1]!), 0);
  assert.deepEqual([got[1]!.full, got[1]!.removedLbIds, got[1]!.statusOnly], [false, [], false], "the empty message is a keepalive");
  assert.equal(got[2]!.full, true);
  assert.ok(lbBytes(got[2]!) >= RELEASE_AFTER_BYTES);
  assert.equal(lbBytes(got[3]!), 0);
  assert.deepEqual(got.map((r) => r.sequence), [1n, 2n, 3n, 4n]);
});

test("small messages are not followed by empty ones", async () => {
  const got = await firstMessages(3, WatchMode.SNAPSHOTS, 3);
  assert.ok(got.every((r) => r.full && lbBytes(r) > 0 && lbBytes(r) < RELEASE_AFTER_BYTES));
  assert.deepEqual(got.map((r) => r.sequence), [1n, 2n, 3n]);
});

test("CHANGES of a big load balancer: the first snapshot is followed by an empty message, then changes", async () => {
  const got = await firstMessages(2000, WatchMode.CHANGES, 3);
  assert.equal(got[0]!.full, true);
  assert.equal(lbBytes(got[1]!), 0);
  assert.equal(got[2]!.full, false);
  // Every member's lastchg moves each tick, but only what changed besides is
  // sent: the listener and pool counters (tick) moved, members' did not.
  assert.ok(lbBytes(got[2]!) > 0 && lbBytes(got[2]!) < RELEASE_AFTER_BYTES, `changes are small (${lbBytes(got[2]!)} bytes)`);
});
