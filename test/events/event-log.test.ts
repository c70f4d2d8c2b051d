// The event ring on its own (pure, no agent): numbering, resume, eviction,
// epochs, filters, keepalive positions and the slow-reader bound.
import { test } from "node:test";
import assert from "node:assert/strict";
import { EventLog, type SubscriptionItem } from "../../src/events/event-log.js";
import { DomainError } from "../../src/errors.js";
import type { AgentEvent } from "../../src/events/model.js";
import { applyIni, defaultConfig } from "../../src/config/config.js";
import { keepLocalOptions } from "../../src/config/config-store.js";

const LB_A = "0b0e5f34-7c44-4f5e-9a55-1a1a1a1a1a1a";
const LB_B = "0b0e5f34-7c44-4f5e-9a55-2b2b2b2b2b2b";
const stopped = (lbId: string): AgentEvent => ({ kind: "haproxy_stopped", lbId, deleted: false });
const cfg = (): AgentEvent => ({ kind: "agent_config_changed", applied: [], restartNeeded: [] });

async function take(sub: { next(): Promise<SubscriptionItem | undefined> }, n: number): Promise<number[]> {
  const out: number[] = [];
  while (out.length < n) {
    const i = await sub.next();
    if (!i) break;
    if (i.type === "event") out.push(i.event.seq);
  }
  return out;
}

function thrown(fn: () => unknown): DomainError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof DomainError);
    return e;
  }
  assert.fail("expected an error");
}

test("events are numbered 1, 2, 3... in one epoch; a live subscriber gets only later ones", async () => {
  const log = new EventLog({ size: 8 });
  assert.match(log.epoch, /^[0-9a-f]{16}$/);
  log.publish(cfg());
  const sub = log.subscribe();
  const a = log.publish(cfg());
  const b = log.publish(stopped(LB_A));
  assert.deepEqual([a.seq, b.seq], [2, 3]);
  assert.deepEqual(await take(sub, 2), [2, 3]);
  assert.notEqual(new EventLog().epoch, log.epoch);
  sub.close();
  assert.equal(await sub.next(), undefined);
  assert.equal(log.subscriberCount, 0);
});

test("resume: after seq N of this epoch gives every later event, then live ones", async () => {
  const log = new EventLog({ size: 8 });
  for (let i = 0; i < 5; i++) log.publish(cfg());
  const sub = log.subscribe({ sinceSeq: 2, epoch: log.epoch });
  assert.deepEqual(await take(sub, 3), [3, 4, 5]);
  log.publish(cfg());
  assert.deepEqual(await take(sub, 1), [6]);
  // 0 = from the first event; an empty epoch = the current one.
  assert.deepEqual(await take(log.subscribe({ sinceSeq: 0 }), 6), [1, 2, 3, 4, 5, 6]);
});

test("out_of_range: evicted events, another epoch, a seq from the future", () => {
  const log = new EventLog({ size: 4 });
  for (let i = 0; i < 10; i++) log.publish(cfg());
  assert.equal(log.oldestSeq, 7);
  // After 6: event 7 on is held; after 5: 6 is gone.
  log.subscribe({ sinceSeq: 6, epoch: log.epoch }).close();
  const evicted = thrown(() => log.subscribe({ sinceSeq: 5, epoch: log.epoch }));
  assert.equal(evicted.kind, "out_of_range");
  assert.equal(evicted.reason, "EVENTS_EVICTED");
  const epoch = thrown(() => log.subscribe({ sinceSeq: 9, epoch: "0123456789abcdef" }));
  assert.equal(epoch.reason, "EPOCH_CHANGED");
  assert.equal(thrown(() => log.subscribe({ sinceSeq: 11, epoch: log.epoch })).reason, "SEQ_AHEAD");
});

test("a subscriber whose next event is evicted while it reads slowly gets out_of_range, never a gap", async () => {
  const log = new EventLog({ size: 4, maxLag: 100 });
  const sub = log.subscribe();
  for (let i = 0; i < 3; i++) log.publish(cfg());
  assert.deepEqual(await take(sub, 1), [1]);
  for (let i = 0; i < 5; i++) log.publish(cfg());
  await assert.rejects(sub.next(), (e: DomainError) => e.kind === "out_of_range" && e.reason === "EVENTS_EVICTED" && /event 2 /.test(e.message));
  assert.equal(log.ended.get("EVENTS_EVICTED"), 1);
});

test("a reader that falls more than maxLag behind ends with exhausted (SLOW_CONSUMER) and resumes losing nothing", async () => {
  const log = new EventLog({ size: 100, maxLag: 10 });
  const sub = log.subscribe();
  for (let i = 0; i < 5; i++) log.publish(cfg());
  assert.deepEqual(await take(sub, 2), [1, 2]);
  for (let i = 0; i < 20; i++) log.publish(cfg());
  const err = await sub.next().then(() => undefined, (e: DomainError) => e);
  assert.equal(err?.kind, "exhausted");
  assert.equal(err?.reason, "SLOW_CONSUMER");
  assert.match(err!.message, /resume after event 2 /);
  assert.equal(sub.position, 2);
  // The resume replays a backlog bigger than maxLag: that is no lag.
  const again = log.subscribe({ sinceSeq: sub.position, epoch: log.epoch });
  assert.deepEqual(await take(again, 23), Array.from({ length: 23 }, (_, i) => i + 3));
  assert.equal(log.ended.get("SLOW_CONSUMER"), 1);
});

test("filters by kind and load balancer; keepalives carry the position a filtered reader reached", async () => {
  const log = new EventLog({ size: 16 });
  const sub = log.subscribe({ filter: { kinds: ["haproxy_stopped"], lbIds: [LB_A.toUpperCase()] }, keepaliveMs: 30 });
  log.publish(stopped(LB_B));
  log.publish(cfg());
  log.publish(stopped(LB_A));
  log.publish(cfg());
  const first = await sub.next();
  assert.equal(first?.type === "event" && first.event.seq, 3);
  // The keepalive timer is unref'd (a subscription never keeps a process
  // alive on its own; in the agent the server does): hold the loop here.
  const hold = setInterval(() => {}, 1000);
  try {
    const k = await sub.next();
    assert.deepEqual(k, { type: "keepalive", seq: 4 });
  } finally {
    clearInterval(hold);
  }
  sub.close();
});

test("close() ends every stream normally and later subscriptions at once", async () => {
  const log = new EventLog();
  const sub = log.subscribe();
  const pending = sub.next();
  log.close();
  assert.equal(await pending, undefined);
  assert.equal(await log.subscribe().next(), undefined);
});

test("[amphora_agent] event_ring_size sets the ring (16..1,000,000, default 10,000); an agent config upload keeps it", () => {
  assert.equal(defaultConfig().eventRingSize, 10_000);
  assert.equal(applyIni(defaultConfig(), "[amphora_agent]\nevent_ring_size = 50\n", "f").config.eventRingSize, 50);
  assert.throws(() => applyIni(defaultConfig(), "[amphora_agent]\nevent_ring_size = 5\n", "f"), /event_ring_size: must be between 16 and 1000000/);
  // Octavia's controller never renders it: PUT /1.0/config keeps the operator's value.
  const kept = keepLocalOptions("[amphora_agent]\nevent_ring_size = 50\n", "[health_manager]\nheartbeat_interval = 3\n");
  assert.deepEqual(kept.kept, ["amphora_agent.event_ring_size"]);
  assert.equal(applyIni(defaultConfig(), kept.text, "f").config.eventRingSize, 50);
});
