// How a tick reaches many subscribers: in slices (DELIVERY_SLICE per turn
// of the event loop), and nothing that happens between two slices may
// reorder or duplicate what a subscriber gets. The collector reads
// scripted `show stat` answers here instead of haproxy: the tests must
// decide exactly when a poll answers (in the middle of a delivery), which a
// real haproxy cannot be made to do. Everything after the read (collector,
// accumulator, deltas, hub, subscriptions) is the real code.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { EventEmitter } from "node:events";
import { StatsCollector } from "../../src/stats/collector.js";
import { parseShowStat, type RawLbStats } from "../../src/stats/haproxy-stats.js";
import { DELIVERY_SLICE, WatchHub, type Subscription } from "../../src/stats/watch-hub.js";
import type { LoadBalancerCatalog, LoadBalancerEvent, LoadBalancerRef } from "../../src/haproxy/catalog.js";
import { silentLogger } from "../../src/log.js";
import { until } from "./fixture.js";

class OneLbCatalog extends EventEmitter<{ event: [LoadBalancerEvent] }> implements LoadBalancerCatalog {
  constructor(readonly ref: LoadBalancerRef) {
    super();
  }
  list() {
    return [this.ref];
  }
  get(id: string) {
    return id === this.ref.lbId ? this.ref : undefined;
  }
}

/** One listener, one pool, one member: `sessions` counted on all three. */
function answer(sessions: number, memberStatus = "UP"): RawLbStats {
  const csv = [
    "# pxname,svname,status,weight,stot,type",
    `fe1,FRONTEND,OPEN,,${sessions},0`,
    `pool1:fe1,m1,${memberStatus},1,${sessions},2`,
    `pool1:fe1,BACKEND,UP,1,${sessions},1`,
    "",
  ].join("\n");
  return { workerPid: "100", uptimeSec: 10, currentConnections: 0, table: parseShowStat(csv) };
}

/**
 * A collector whose polls wait until the test answers them. Subscribers use
 * a 1 s interval: the next tick's poll is never asked while a test still
 * expects an answer to go to the poll it started itself.
 */
function scripted() {
  const ref: LoadBalancerRef = { lbId: "lb-1", masterSocket: "/nonexistent", running: true, listenerIds: ["fe1"] };
  const pending: ((r: RawLbStats) => void)[] = [];
  const collector = new StatsCollector({
    catalog: new OneLbCatalog(ref),
    logger: silentLogger,
    read: () => new Promise<RawLbStats>((r) => pending.push(r)),
  });
  const hub = new WatchHub(collector, silentLogger);
  after(() => {
    hub.close();
    collector.close();
  });
  return {
    ref, collector, hub,
    /** Answers the poll waiting now (waits for one to be asked). */
    async answer(r: RawLbStats): Promise<void> {
      await until("a poll", () => pending.length > 0 || undefined, 5000);
      pending.shift()!(r);
    },
  };
}

/** One turn of the event loop: what a slice of a delivery waits for. */
const turn = () => new Promise<void>((r) => setImmediate(r));

/** Everything a subscription has ready now, without waiting. */
function drain(s: Subscription) {
  const out = [];
  for (let u = s.take(); u; u = s.take()) out.push(u);
  return out;
}

const N = DELIVERY_SLICE * 3 + 5;

test(`a tick reaches all ${N} subscribers once; a status change during the delivery does not overtake it`, async () => {
  const t = scripted();
  const subs = Array.from({ length: N }, () => t.hub.subscribe({ intervalMs: 1000, mode: "changes" }));
  await t.answer(answer(1));
  await until("first snapshots", () => subs.every((s) => s.hasReady) || undefined);
  for (const s of subs) assert.deepEqual(drain(s).map((u) => [u.sequence, u.full]), [[1, true]]);

  // Tick 2: counters moved. After one turn only the first slice has its update.
  await t.answer(answer(5));
  await turn();
  const served = subs.filter((s) => s.hasReady).length;
  assert.ok(served >= 1 && served < N, `a delivery in slices (${served} of ${N} served after one turn)`);
  // Now a poll outside the tick (heartbeat, event) sees the member go DOWN.
  const outside = t.collector.collect(t.ref);
  await t.answer(answer(5, "DOWN"));
  await outside;
  await until("everyone served", () => subs.every((s) => s.hasReady) || undefined);
  for (const s of subs) {
    const got = drain(s);
    assert.deepEqual(got.map((u) => [u.sequence, u.full, u.statusOnly]), [[2, false, false], [3, false, true]],
      "the tick's update, then the status change: never the other way round");
    assert.equal(got[0]!.loadBalancers[0]!.listeners[0]!.delta!.totalSessions, 4);
    assert.equal(got[1]!.loadBalancers[0]!.pools[0]!.members[0]!.status, "DOWN");
  }
  for (const s of subs) s.close();
});

test("a subscriber that reads its collapsed queue while its slice is pending does not get the same tick twice", async () => {
  const t = scripted();
  // queueLimit 1 and nobody reading: tick 2 collapses every queue.
  const subs = Array.from({ length: N }, () => t.hub.subscribe({ intervalMs: 1000, mode: "changes", queueLimit: 1 }));
  await t.answer(answer(1));
  await until("first snapshots", () => subs.every((s) => s.hasReady) || undefined);
  await t.answer(answer(2));
  for (let i = 0; i < N / DELIVERY_SLICE + 2; i++) await turn();
  // Tick 3 (counters moved again): everyone reads right after the first slice.
  await t.answer(answer(7));
  await turn();
  const reads = subs.map((s) => drain(s));
  for (const r of reads) {
    assert.equal(r.length, 1);
    assert.equal(r[0]!.full, true, "the collapsed queue: one complete snapshot");
    assert.equal(r[0]!.loadBalancers[0]!.listeners[0]!.totals!.totalSessions, 7, "of tick 3 already");
  }
  // Let the remaining slices run: nobody may get tick 3's changes on top
  // of the snapshot that already holds them (its deltas would count twice).
  for (let i = 0; i < N / DELIVERY_SLICE + 2; i++) await turn();
  const twice = subs.filter((s) => s.hasReady).length;
  assert.equal(twice, 0, `${twice} subscribers got tick 3 again after its snapshot`);
  for (const s of subs) s.close();
});
