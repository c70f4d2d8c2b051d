// The WatchStats engine on real haproxy: one poll per load balancer per
// interval however many subscribers, bounded queues that coalesce for slow
// readers, load balancers appearing/disappearing mid-stream, status changes
// delivered between ticks, and pollers stopping when the last subscriber goes.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { StatsCollector } from "../../src/stats/collector.js";
import { WatchHub, type StatsUpdate, type Subscription } from "../../src/stats/watch-hub.js";
import { silentLogger } from "../../src/log.js";
import { testEnv, until } from "./fixture.js";

const env = await testEnv();
after(() => env.cleanup());

function setup() {
  const collector = new StatsCollector({ catalog: env.catalog, logger: silentLogger });
  const hub = new WatchHub(collector, silentLogger);
  after(() => {
    hub.close();
    collector.close();
  });
  return { collector, hub };
}

/** Reads a subscription in the background. */
function reader(sub: Subscription) {
  const got: StatsUpdate[] = [];
  const done = (async () => {
    for await (const u of sub) got.push(u);
  })();
  return { got, done };
}

test("100 subscribers at one interval share one poll per load balancer per tick", async () => {
  const a = await env.startLb();
  const b = await env.startLb();
  env.catalog.put(a.ref());
  env.catalog.put(b.ref());
  after(() => {
    env.catalog.remove(a.lbId);
    env.catalog.remove(b.lbId);
  });
  const { collector, hub } = setup();
  const subs = Array.from({ length: 100 }, () => hub.subscribe({ intervalMs: 200, mode: "snapshots" }));
  const readers = subs.map(reader);
  await until("5 snapshots each", () => readers.every((r) => r.got.length >= 5) || undefined);
  const polls = collector.pollsOf(a.lbId);
  assert.equal(hub.groupCount, 1);
  assert.equal(hub.subscriberCount, 100);
  // 5+ ticks were needed for 5 snapshots; each tick polled each LB once.
  assert.ok(polls >= 5 && polls <= 7, `polls of one LB: ${polls}`);
  assert.equal(collector.pollsOf(b.lbId), polls);
  for (const r of readers) {
    const u = r.got[0]!;
    assert.equal(u.full, true);
    assert.equal(u.sequence, 1);
    assert.deepEqual(u.loadBalancers.map((l) => l.lbId).sort(), [a.lbId, b.lbId].sort());
  }
  // Cancellation releases everything: no group, no more polls.
  for (const s of subs) s.close();
  await Promise.all(readers.map((r) => r.done));
  assert.equal(hub.subscriberCount, 0);
  assert.equal(hub.groupCount, 0);
  const after0 = collector.polls;
  await sleep(600);
  assert.equal(collector.polls, after0, "no polling without subscribers");
});

test("a filter selects load balancers and listeners; traffic shows in totals and deltas", async () => {
  const a = await env.startLb();
  const b = await env.startLb();
  env.catalog.put(a.ref());
  env.catalog.put(b.ref());
  after(() => {
    env.catalog.remove(a.lbId);
    env.catalog.remove(b.lbId);
  });
  const { hub } = setup();
  const onlyA = reader(hub.subscribe({ intervalMs: 150, mode: "snapshots", filter: { lbIds: [a.lbId] } }));
  const noListener = reader(hub.subscribe({ intervalMs: 150, mode: "snapshots", filter: { listenerIds: ["00000000-0000-4000-8000-000000000000"] } }));
  await until("first", () => onlyA.got.length >= 1 || undefined);
  await a.traffic(4);
  const seen = await until("4 sessions", () => onlyA.got.find((u) => u.loadBalancers[0]?.listeners[0]?.totals?.totalSessions === 4));
  assert.deepEqual(seen.loadBalancers.map((l) => l.lbId), [a.lbId]);
  const deltaSum = onlyA.got.reduce((n, u) => n + (u.loadBalancers[0]?.listeners[0]?.delta?.totalSessions ?? 0), 0);
  assert.equal(deltaSum, 4, "deltas add up to the traffic");
  assert.ok(noListener.got.length >= 1);
  assert.ok(noListener.got.every((u) => u.loadBalancers.length === 0));
});

test("a slow subscriber's queue collapses into one complete snapshot with missed_updates; others get everything", async () => {
  const a = await env.startLb();
  env.catalog.put(a.ref());
  after(() => env.catalog.remove(a.lbId));
  const { hub } = setup();
  const fast = reader(hub.subscribe({ intervalMs: 100, mode: "snapshots" }));
  const slow = hub.subscribe({ intervalMs: 100, mode: "snapshots", queueLimit: 3 });
  await until("10 fast updates", () => fast.got.length >= 10 || undefined);
  assert.ok(slow.queued <= 3, `slow queue bounded: ${slow.queued}`);
  // Its 3 queued updates and everything after collapsed into one complete
  // snapshot of the latest tick, handed over at its next read.
  const collapsed = await slow.next();
  assert.ok(collapsed!.missedUpdates >= 8, `missed ${collapsed!.missedUpdates}`);
  assert.equal(collapsed!.full, true);
  assert.equal(collapsed!.sequence, 1);
  assert.deepEqual(collapsed!.loadBalancers.map((l) => l.lbId), [a.lbId]);
  // Reading again: back to normal delivery.
  const next = await slow.next();
  assert.equal(next!.missedUpdates, 0);
  assert.equal(next!.sequence, 2);
  slow.close();
  // The fast reader saw every tick, in order.
  fast.got.forEach((u, i) => {
    assert.equal(u.sequence, i + 1);
    assert.equal(u.missedUpdates, 0);
  });
});

test("CHANGES: load balancers appear, stop and go away mid-stream, at once, not at the next tick", async () => {
  const a = await env.startLb();
  env.catalog.put(a.ref());
  after(() => env.catalog.refs.has(a.lbId) && env.catalog.remove(a.lbId));
  const { hub } = setup();
  // A long interval: everything below must arrive between ticks.
  const r = reader(hub.subscribe({ intervalMs: 60_000, mode: "changes" }));
  await until("first snapshot", () => r.got.length >= 1 || undefined);
  assert.equal(r.got[0]!.full, true);

  const b = await env.startLb();
  const t0 = Date.now();
  env.catalog.put(b.ref(), "created");
  const appeared = await until("b appears", () => r.got.find((u) => u.loadBalancers.some((l) => l.lbId === b.lbId)), 3000);
  assert.equal(appeared.statusOnly, true);
  assert.ok(Date.now() - t0 < 3000);

  await b.stop();
  env.catalog.put(b.ref(), "stopped");
  const stopped = await until("b stopped", () => r.got.find((u) => u.loadBalancers.some((l) => l.lbId === b.lbId && !l.running)), 3000);
  assert.equal(stopped.loadBalancers[0]!.listeners[0]!.status, "STOPPED");

  env.catalog.remove(b.lbId);
  const removed = await until("b removed", () => r.got.find((u) => u.removedLbIds.includes(b.lbId)), 3000);
  assert.equal(removed.full, false);
});

test("CHANGES: a member status change seen by any poll reaches the stream at once", async () => {
  const a = await env.startLb();
  env.catalog.put(a.ref());
  after(() => env.catalog.remove(a.lbId));
  const { collector, hub } = setup();
  const r = reader(hub.subscribe({ intervalMs: 60_000, mode: "changes" }));
  await until("first snapshot", () => r.got.length >= 1 || undefined);
  const m0 = a.memberIds[0]!;
  await a.cli(`@1 set server ${a.poolName}/${m0} state maint`);
  // Another consumer polls (GetStats, the heartbeat, another interval...).
  await collector.collect(a.ref());
  const u = await until("maint", () => r.got.find((x) => x.statusOnly), 3000);
  const members = u.loadBalancers[0]!.pools[0]!.members;
  assert.deepEqual(members.map((m) => [m.memberId, m.status]), [[m0, "MAINT"]], "only the changed member");
  assert.equal(members[0]!.totals, undefined, "status only: no counters");
  // Nothing else changed: no more messages.
  await collector.collect(a.ref());
  await sleep(100);
  assert.equal(r.got.filter((x) => x.statusOnly).length, 1);
});

test("a reload mid-stream: the stream continues and totals keep growing", async () => {
  const a = await env.startLb();
  env.catalog.put(a.ref());
  after(() => env.catalog.remove(a.lbId));
  const { hub } = setup();
  const r = reader(hub.subscribe({ intervalMs: 100, mode: "snapshots" }));
  await a.traffic(3);
  await until("3", () => r.got.find((u) => u.loadBalancers[0]?.listeners[0]?.totals?.totalSessions === 3));
  await a.reload();
  env.catalog.put(a.ref(), "reloaded");
  await a.traffic(2);
  const u = await until("5", () => r.got.find((x) => x.loadBalancers[0]?.listeners[0]?.totals?.totalSessions === 5));
  assert.equal(u.loadBalancers[0]!.reloads, 1);
  let prev = 0;
  for (const x of r.got) {
    const t = x.loadBalancers[0]?.listeners[0]?.totals?.totalSessions ?? 0;
    assert.ok(t >= prev, "monotonic");
    prev = t;
    assert.ok((x.loadBalancers[0]?.listeners[0]?.delta?.totalSessions ?? 0) >= 0);
  }
});

test("CHANGES with a long interval: a member going to MAINT arrives within seconds from the status probe alone", async () => {
  const a = await env.startLb();
  env.catalog.put(a.ref());
  after(() => env.catalog.remove(a.lbId));
  const { hub } = setup();
  const sub = hub.subscribe({ intervalMs: 3_600_000, mode: "changes" });
  const r = reader(sub);
  await until("first snapshot", () => r.got.length >= 1 || undefined);
  const m1 = a.memberIds[1]!;
  const t0 = Date.now();
  await a.cli(`@1 set server ${a.poolName}/${m1} state maint`);
  const u = await until("maint via probe", () => r.got.find((x) => x.statusOnly), 5000);
  assert.ok(Date.now() - t0 < 5000);
  assert.deepEqual(u.loadBalancers[0]!.pools[0]!.members.map((m) => [m.memberId, m.status]), [[m1, "MAINT"]]);
  // The probe ends with the last CHANGES subscriber of a long interval.
  sub.close();
  await r.done;
  const probes = hub.probes;
  await sleep(1500);
  assert.equal(hub.probes, probes);
});

test("no status probe for SNAPSHOTS or short CHANGES intervals", async () => {
  const { hub } = setup();
  const s1 = hub.subscribe({ intervalMs: 60_000, mode: "snapshots" });
  const s2 = hub.subscribe({ intervalMs: 1000, mode: "changes" });
  await sleep(1500);
  assert.equal(hub.probes, 0);
  s1.close();
  s2.close();
});

test("a CHANGES subscriber joining a group of SNAPSHOTS subscribers gets a full snapshot, then only what changed", async () => {
  const a = await env.startLb();
  env.catalog.put(a.ref());
  after(() => env.catalog.refs.has(a.lbId) && env.catalog.remove(a.lbId));
  const { hub } = setup();
  // Diffs are computed only while the group has CHANGES subscribers.
  const snaps = reader(hub.subscribe({ intervalMs: 150, mode: "snapshots", filter: { lbIds: [a.lbId] } }));
  await until("snapshots flowing", () => snaps.got.length >= 3 || undefined);
  await a.traffic(2);
  await until("2 sessions in a snapshot", () => snaps.got.find((u) => u.loadBalancers[0]?.listeners[0]?.totals?.totalSessions === 2));
  const ch = reader(hub.subscribe({ intervalMs: 150, mode: "changes", filter: { lbIds: [a.lbId] } }));
  await until("first", () => ch.got.length >= 1 || undefined);
  assert.equal(ch.got[0]!.full, true);
  assert.equal(ch.got[0]!.loadBalancers[0]!.listeners[0]!.totals!.totalSessions, 2);
  await sleep(500);
  assert.ok(ch.got.slice(1).every((u) => u.loadBalancers.length === 0), "nothing moved: no changes sent");
  await a.traffic(3);
  const changed = await until("traffic as a change", () => ch.got.find((u) => !u.full && u.loadBalancers[0]?.listeners.length));
  assert.equal(changed.loadBalancers[0]!.listeners[0]!.totals!.totalSessions, 5);
  const deltaSum = ch.got.reduce((n, u) => n + (u.full ? 0 : (u.loadBalancers[0]?.listeners[0]?.delta?.totalSessions ?? 0)), 0);
  await until("all 3 in deltas", () => ch.got.reduce((n, u) => n + (u.full ? 0 : (u.loadBalancers[0]?.listeners[0]?.delta?.totalSessions ?? 0)), 0) === 3 || undefined);
  assert.ok(deltaSum <= 3);
});
