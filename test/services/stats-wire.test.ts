// The hand-written LoadBalancerStats encoder must give exactly toBinary()'s
// bytes for the same stats, also when its caches (keyed by totals objects)
// hold an encoding of an object that since changed in another field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { toBinary } from "@bufbuild/protobuf";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { LoadBalancerStatsSchema } from "../../src/gen/amphora/v1/stats_pb.js";
import { encodeLoadBalancerStats } from "../../src/services/stats-wire.js";
import { lbToProto } from "../../src/services/stats-service.js";
import { NO_CHANGE, zeroCounters, type Counters, type LoadBalancerStats, type MemberStats } from "../../src/stats/model.js";

/** What the encoder must equal (lbToProto caches by object: pass fresh objects). */
function reference(lb: LoadBalancerStats): Uint8Array {
  return toBinary(LoadBalancerStatsSchema, lbToProto(structuredClone(lb)));
}

function check(lb: LoadBalancerStats, what: string): void {
  const want = reference(lb);
  assert.deepEqual(new Uint8Array(encodeLoadBalancerStats(lb)), want, what);
  // Length-prefixed: the data of a length-delimited field.
  assert.deepEqual(new Uint8Array(encodeLoadBalancerStats(lb, true)), new BinaryWriter().bytes(want).finish(), `${what} (length-prefixed)`);
}

function counters(seed: number): Counters {
  const c = zeroCounters();
  let i = 0;
  for (const k of Object.keys(c) as (keyof Counters)[]) c[k] = (seed * 7919 * ++i) % 1000 === 0 ? 0 : seed * i * 131;
  return c;
}

function member(i: number, totals: Counters, o: Partial<MemberStats> = {}): MemberStats {
  return {
    memberId: `m-${i}`, status: "UP", rawStatus: "UP", weight: 1, currentSessions: i, maxSessions: 2 * i, totals, delta: NO_CHANGE,
    checkStatus: "L4OK", checkFailures: 0, statusSince: 1000 - 10 - i, ...o,
  };
}

function bigLb(): LoadBalancerStats {
  return {
    lbId: "8b0e1b1e-0000-4000-8000-000000000001", running: true, reloads: 3, currentConnections: 12, statusClock: 1000,
    listeners: [
      { listenerId: "l-1", status: "OPEN", rawStatus: "OPEN", currentSessions: 1, maxSessions: 5, sessionLimit: 100, totals: counters(1), delta: counters(2) },
      { listenerId: "l-2", status: "UNKNOWN", rawStatus: "?", currentSessions: 0, maxSessions: 0, sessionLimit: 0, totals: zeroCounters(), delta: NO_CHANGE },
    ],
    pools: [
      {
        name: "p-1:l-1", poolId: "p-1", listenerId: "l-1", status: "UP", currentSessions: 3, totals: counters(3), delta: NO_CHANGE,
        members: [member(1, counters(4)), member(2, counters(5), { status: "DRAIN", weight: 0 }), member(3, zeroCounters(), { checkStatus: "", statusSince: 1000 })],
      },
      { name: "p-2:l-2", poolId: "p-2", listenerId: "l-2", status: "UNKNOWN", currentSessions: 0, totals: counters(6), delta: counters(7), members: [] },
    ],
  };
}

test("the encoding equals toBinary for assorted stats", () => {
  check(bigLb(), "ordinary");
  check({ lbId: "", running: false, reloads: 0, currentConnections: 0, listeners: [], pools: [], statusClock: 0 }, "empty");
  const huge = bigLb();
  // Above 32 bits, up to the largest exact integer.
  huge.listeners[0]!.totals = { ...counters(1), bytesIn: 2 ** 32, bytesOut: 2 ** 53 - 1, requests: 2 ** 35 };
  huge.pools[0]!.members[0]!.statusSince = huge.statusClock - 2 ** 31;
  huge.reloads = 2 ** 40 + 5;
  check(huge, "large numbers");
  const text = bigLb();
  text.pools[0]!.members[0]!.memberId = "mémbre-ü-✓";
  text.pools[0]!.members[0]!.checkStatus = "L7STS 503 ünavailable";
  text.listeners[0]!.listenerId = "é";
  check(text, "non-ASCII strings");
  const statusOnly = bigLb();
  for (const l of statusOnly.listeners) { l.totals = undefined; l.delta = undefined; }
  for (const p of statusOnly.pools) {
    p.totals = undefined;
    p.delta = undefined;
    for (const m of p.members) { m.totals = undefined; m.delta = undefined; }
  }
  check(statusOnly, "status-only (no counters)");
  const stopped = bigLb();
  stopped.running = false;
  stopped.listeners[0]!.status = "STOPPED";
  stopped.pools = [];
  check(stopped, "stopped");
});

test("a cached encoding is not reused once any other field of the object changed", () => {
  const lb = bigLb();
  check(lb, "first");
  check(lb, "again from the caches");
  // Same totals objects throughout; one other field at a time, each
  // change on top of the previous ones (so only that field differs from
  // what the cache holds).
  const m0 = (o: Partial<MemberStats>) => () => (lb.pools[0]!.members[0] = { ...lb.pools[0]!.members[0]!, ...o });
  const steps: [string, () => void][] = [
    ["member lastchg", m0({ statusSince: lb.statusClock - 99 })],
    ["member status", m0({ status: "DOWN" })],
    ["member weight", m0({ weight: 7 })],
    ["member current sessions", m0({ currentSessions: 42 })],
    ["member max sessions", m0({ maxSessions: 43 })],
    ["member check status", m0({ checkStatus: "L4TOUT" })],
    ["member check failures", m0({ checkFailures: 2 })],
    ["member delta", m0({ delta: counters(9) })],
    ["member id", m0({ memberId: "m-x" })],
    ["listener sessions", () => (lb.listeners[0] = { ...lb.listeners[0]!, currentSessions: 77 })],
    ["listener max sessions", () => (lb.listeners[0] = { ...lb.listeners[0]!, maxSessions: 78 })],
    ["listener limit", () => (lb.listeners[0] = { ...lb.listeners[0]!, sessionLimit: 79 })],
    ["listener status", () => (lb.listeners[0] = { ...lb.listeners[0]!, status: "FULL" })],
    ["listener delta", () => (lb.listeners[0] = { ...lb.listeners[0]!, delta: NO_CHANGE })],
    ["pool status", () => (lb.pools[0] = { ...lb.pools[0]!, status: "DOWN" })],
    ["pool sessions", () => (lb.pools[0] = { ...lb.pools[0]!, currentSessions: 9 })],
    ["pool members", () => (lb.pools[0] = { ...lb.pools[0]!, members: lb.pools[0]!.members.slice(1) })],
    ["lb fields", () => Object.assign(lb, { reloads: 4, currentConnections: 0 })],
  ];
  for (const [what, change] of steps) {
    change();
    check(lb, what);
  }
});
