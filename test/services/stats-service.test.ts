// GetStats and WatchStats through a real agent over every streaming
// protocol (Connect, gRPC, gRPC-Web) with mutual TLS. The agent watches a
// catalog this test controls (see fixture.ts) with real haproxy behind it.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { StatsService, WatchMode, MemberState, ListenerState, type WatchStatsResponse } from "../../src/gen/amphora/v1/stats_pb.js";
import { startTestAgent } from "../support/agent.js";
import { testEnv, until } from "../stats/fixture.js";

const env = await testEnv();
// Registered before the agent starts, so it also runs when that start fails.
after(() => env.cleanup());
const lb = await env.startLb({ members: 2 });
env.catalog.put(lb.ref());
const agent = await startTestAgent({ catalog: env.catalog });
after(() => agent.cleanup());
const mon = agent.ctx.monitoring;

test("GetStats: typed stats of the load balancer with traffic counted", async () => {
  await lb.traffic(5);
  const res = await agent.client(StatsService).getStats({});
  assert.equal(res.loadBalancers.length, 1);
  const s = res.loadBalancers[0]!;
  assert.equal(s.lbId, lb.lbId);
  assert.equal(s.running, true);
  assert.equal(s.listeners[0]!.listenerId, lb.listenerId);
  assert.equal(s.listeners[0]!.status, ListenerState.OPEN);
  assert.equal(s.listeners[0]!.totals!.totalSessions, 5n);
  assert.equal(s.listeners[0]!.totals!.http2xx, 5n);
  assert.equal(s.pools[0]!.name, lb.poolName);
  assert.ok(s.pools[0]!.members.every((m) => m.status === MemberState.NO_CHECK));
  assert.ok(res.collectedAt);
  const none = await agent.client(StatsService).getStats({ filter: { lbIds: ["00000000-0000-4000-8000-000000000000"] } });
  assert.equal(none.loadBalancers.length, 0);
});

test("WatchStats rejects an interval out of bounds", async () => {
  for (const intervalMs of [0, 99, 3_600_001]) {
    const stream = agent.client(StatsService).watchStats({ intervalMs, mode: WatchMode.SNAPSHOTS });
    await assert.rejects(async () => {
      for await (const _ of stream) break;
    }, (e: unknown) => ConnectError.from(e).code === Code.InvalidArgument);
  }
});

// Binary protocols carry the load balancers pre-encoded (shared by all
// streams); connect-json gets ordinary messages. Both must decode the same.
for (const kind of ["connect", "connect-json", "grpc", "grpc-web"] as const) {
  test(`WatchStats over ${kind}: snapshots follow traffic; cancellation releases the poller`, async () => {
    const ac = new AbortController();
    const got: WatchStatsResponse[] = [];
    const before = (await agent.client(StatsService).getStats({})).loadBalancers[0]!.listeners[0]!.totals!.totalSessions;
    const stream = agent.client(StatsService, kind).watchStats({ intervalMs: 100, mode: WatchMode.SNAPSHOTS }, { signal: ac.signal });
    const done = (async () => {
      try {
        for await (const m of stream) got.push(m);
      } catch (e) {
        if (ConnectError.from(e).code !== Code.Canceled) throw e;
      }
    })();
    await until("first message", () => got.length >= 1 || undefined);
    assert.equal(got[0]!.full, true);
    assert.equal(got[0]!.sequence, 1n);
    await lb.traffic(3);
    const m = await until("3 more sessions", () => got.find((x) => x.loadBalancers[0]?.listeners[0]?.totals?.totalSessions === before + 3n));
    assert.equal(m.loadBalancers[0]!.lbId, lb.lbId);
    const deltas = got.reduce((n, x) => n + (x.loadBalancers[0]?.listeners[0]?.delta?.totalSessions ?? 0n), 0n);
    assert.equal(deltas, 3n, "deltas add up to the traffic");
    assert.equal(mon.hub.subscriberCount, 1);
    ac.abort();
    await done;
    await until("subscriber released", () => mon.hub.subscriberCount === 0 || undefined, 5000);
    assert.equal(mon.hub.groupCount, 0);
    const polls = mon.collector.polls;
    await sleep(400);
    assert.equal(mon.collector.polls, polls, "poller stopped");
  });
}

test("WatchStats CHANGES over grpc-web: first complete, then only what changed; deleted LB ends in removed_lb_ids", async () => {
  const other = await env.startLb({ members: 1 });
  env.catalog.put(other.ref(), "created");
  const ac = new AbortController();
  const got: WatchStatsResponse[] = [];
  const stream = agent.client(StatsService, "grpc-web").watchStats({ intervalMs: 200, mode: WatchMode.CHANGES }, { signal: ac.signal });
  const done = (async () => {
    try {
      for await (const m of stream) got.push(m);
    } catch (e) {
      if (ConnectError.from(e).code !== Code.Canceled) throw e;
    }
  })();
  await until("first", () => got.length >= 1 || undefined);
  assert.equal(got[0]!.full, true);
  assert.equal(got[0]!.loadBalancers.length, 2);
  await other.traffic(2);
  const ch = await until("change of other", () => got.find((x) => !x.full && x.loadBalancers.some((l) => l.lbId === other.lbId)));
  assert.deepEqual(ch.loadBalancers.map((l) => l.lbId), [other.lbId], "only the LB that changed");
  env.catalog.remove(other.lbId);
  await until("removed", () => got.find((x) => x.removedLbIds.includes(other.lbId)));
  ac.abort();
  await done;
});

test("the shared pre-encoded form decodes to the ordinary message, at the same size", async () => {
  const { toBinary } = await import("@bufbuild/protobuf");
  const { WatchStatsResponseSchema } = await import("../../src/gen/amphora/v1/stats_pb.js");
  const { testing } = await import("../../src/services/stats-service.js");
  await lb.traffic(1);
  const stats = (await mon.collector.collect(lb.ref())).stats;
  const u = { loadBalancers: [stats, stats], removedLbIds: ["x"], collectedAt: new Date(), full: true, statusOnly: false, missedUpdates: 2, sequence: 7 };
  const shared = toBinary(WatchStatsResponseSchema, testing.updateToProto(u, true));
  const plain = toBinary(WatchStatsResponseSchema, testing.updateToProto(u, false));
  assert.equal(shared.length, plain.length);
  const { fromBinary } = await import("@bufbuild/protobuf");
  assert.deepEqual(fromBinary(WatchStatsResponseSchema, shared), fromBinary(WatchStatsResponseSchema, plain));
  assert.equal(fromBinary(WatchStatsResponseSchema, shared).loadBalancers.length, 2);
});

test("the direct path's pieces (the stream's own fields, then the shared bytes) decode to the ordinary message", async () => {
  const { fromBinary, toBinary } = await import("@bufbuild/protobuf");
  const { WatchStatsResponseSchema } = await import("../../src/gen/amphora/v1/stats_pb.js");
  const { testing } = await import("../../src/services/stats-service.js");
  const stats = (await mon.collector.collect(lb.ref())).stats;
  const since = new Date(5_000);
  const cases = [
    { loadBalancers: [stats, stats], removedLbIds: ["x", "", "ü-lb"], collectedAt: new Date(), full: true, statusOnly: false, missedUpdates: 2, sequence: 7 },
    { loadBalancers: [stats], removedLbIds: [], collectedAt: new Date(9_000), full: false, statusOnly: true, missedUpdates: 0, sequence: 2 ** 40 + 3 },
    // A keepalive: nothing shared but the time.
    { loadBalancers: [], removedLbIds: [], collectedAt: new Date(), full: false, statusOnly: false, missedUpdates: 0, sequence: 1 },
  ];
  for (const u of cases) {
    const direct = Buffer.concat(testing.streamParts(u, since));
    const plain = toBinary(WatchStatsResponseSchema, testing.updateToProto(u, false, since));
    assert.equal(direct.length, plain.length);
    assert.deepEqual(fromBinary(WatchStatsResponseSchema, direct), fromBinary(WatchStatsResponseSchema, plain));
  }
});

test("WatchStats: streams with different filters never carry each other's load balancers (shared encodings are per filter)", async () => {
  const other = await env.startLb({ members: 1 });
  env.catalog.put(other.ref(), "created");
  const ac = new AbortController();
  const watchers = [
    { name: "A changes", lbs: [lb.lbId], filter: { lbIds: [lb.lbId], listenerIds: [] }, mode: WatchMode.CHANGES },
    { name: "B changes", lbs: [other.lbId], filter: { lbIds: [other.lbId], listenerIds: [] }, mode: WatchMode.CHANGES },
    { name: "A's listener changes", lbs: [lb.lbId], filter: { lbIds: [], listenerIds: [lb.listenerId] }, mode: WatchMode.CHANGES },
    { name: "A snapshots", lbs: [lb.lbId], filter: { lbIds: [lb.lbId], listenerIds: [] }, mode: WatchMode.SNAPSHOTS },
    { name: "B snapshots", lbs: [other.lbId], filter: { lbIds: [other.lbId], listenerIds: [] }, mode: WatchMode.SNAPSHOTS },
  ].flatMap((w) => [w, w]).map((w) => {
    const got: WatchStatsResponse[] = [];
    const stream = agent.client(StatsService, "connect").watchStats({ intervalMs: 150, mode: w.mode, filter: w.filter }, { signal: ac.signal });
    const done = (async () => {
      try {
        for await (const m of stream) got.push(m);
      } catch (e) {
        if (ConnectError.from(e).code !== Code.Canceled) throw e;
      }
    })();
    return { ...w, got, done };
  });
  try {
    await until("first messages", () => watchers.every((w) => w.got.length >= 1) || undefined);
    // Traffic on both in the same ticks: each tick's changes hold both LBs
    // before the filters split them.
    await Promise.all([lb.traffic(3), other.traffic(3)]);
    await until("changes on every stream", () => watchers.every((w) =>
      w.mode === WatchMode.CHANGES ? w.got.some((m) => !m.full && m.loadBalancers.length) : w.got.length >= 3) || undefined);
    for (const w of watchers) {
      for (const m of w.got) {
        assert.deepEqual([...new Set(m.loadBalancers.map((l) => l.lbId))], m.loadBalancers.length ? w.lbs : [], `${w.name}: only its own load balancers`);
        for (const l of m.loadBalancers) {
          if (w.name.includes("listener")) assert.ok(l.listeners.every((x) => x.listenerId === lb.listenerId) && l.pools.every((p) => p.listenerId === lb.listenerId));
        }
      }
      assert.deepEqual(w.got.map((m) => m.sequence), w.got.map((_, i) => BigInt(i + 1)), `${w.name}: its own sequence`);
    }
  } finally {
    ac.abort();
    await Promise.all(watchers.map((w) => w.done));
    env.catalog.remove(other.lbId);
  }
});

test("a shared encoding is used only for the update it was made for", async () => {
  const { fromBinary, toBinary } = await import("@bufbuild/protobuf");
  const { WatchStatsResponseSchema } = await import("../../src/gen/amphora/v1/stats_pb.js");
  const { testing } = await import("../../src/services/stats-service.js");
  const stats = (await mon.collector.collect(lb.ref())).stats;
  const lbs = [stats];
  const decode = (u: Parameters<typeof testing.updateToProto>[0], since?: Date) =>
    fromBinary(WatchStatsResponseSchema, toBinary(WatchStatsResponseSchema, testing.updateToProto(u, true, since)));
  const base = { loadBalancers: lbs, removedLbIds: [], collectedAt: new Date(1_000_000), full: true, statusOnly: false, missedUpdates: 0, sequence: 1 };
  const a = decode(base);
  assert.equal(a.full, true);
  assert.equal(a.collectedAt!.seconds, 1000n);
  // The same array with other values (a later tick, another flag): not the stale bytes.
  const b = decode({ ...base, collectedAt: new Date(2_000_000), full: false, statusOnly: true, sequence: 2, removedLbIds: ["gone"] }, new Date(5_000));
  assert.equal(b.collectedAt!.seconds, 2000n);
  assert.equal(b.full, false);
  assert.equal(b.statusOnly, true);
  assert.equal(b.totalsSince!.seconds, 5n);
  assert.equal(b.sequence, 2n);
  assert.deepEqual(b.removedLbIds, ["gone"]);
  assert.equal(b.loadBalancers[0]!.lbId, lb.lbId);
  // Nothing shared at all (a keepalive): only the stream's own fields.
  const k = decode({ ...base, loadBalancers: [], full: false, sequence: 9 });
  assert.equal(k.loadBalancers.length, 0);
  assert.equal(k.sequence, 9n);
});

test("binary calls are recognised by content type; REST and JSON are not", async () => {
  const { isBinaryCall } = await import("../../src/services/stats-service.js");
  for (const ct of ["application/connect+proto", "application/grpc", "application/grpc+proto", "application/grpc-web", "application/grpc-web+proto", "application/proto"]) {
    assert.equal(isBinaryCall(ct, ""), true, ct);
  }
  for (const ct of ["application/connect+json", "application/grpc+json", "application/grpc-web+json", "application/json", null]) {
    assert.equal(isBinaryCall(ct, ""), false, String(ct));
  }
  assert.equal(isBinaryCall("application/connect+proto", "rest"), false);
});
