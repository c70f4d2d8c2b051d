// DeltaTracker on its own (pure logic): deltas never negative, and a look
// at some load balancers keeps the others' baselines when asked to.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DeltaTracker } from "../../src/stats/deltas.js";
import { zeroCounters, type Counters, type LoadBalancerStats } from "../../src/stats/model.js";

function lb(lbId: string, totalSessions: number): LoadBalancerStats {
  return {
    lbId, running: true, pools: [], reloads: 0, currentConnections: 0, statusClock: 0,
    listeners: [{ listenerId: `${lbId}-l`, status: "OPEN", rawStatus: "OPEN", currentSessions: 0, maxSessions: 0, sessionLimit: 0,
      totals: { ...zeroCounters(), totalSessions } }],
  };
}
const sessions = (s: LoadBalancerStats[], id: string) => s.find((x) => x.lbId === id)!.listeners[0]!.delta!.totalSessions;

test("a filtered look keeps the baselines of load balancers that still exist", () => {
  const t = new DeltaTracker("zero");
  t.apply([lb("A", 10), lb("B", 100)]);
  t.apply([lb("A", 15)], (id) => id === "B"); // only A looked at; B still exists
  const r = t.apply([lb("A", 15), lb("B", 120)]);
  assert.equal(sessions(r, "B"), 20, "B's delta since its last look");
  assert.equal(sessions(r, "A"), 0);
});

test("without keep, load balancers not seen are forgotten (deleted ones)", () => {
  const t = new DeltaTracker("zero");
  t.apply([lb("A", 10), lb("B", 100)]);
  t.apply([lb("A", 15)]);
  const r = t.apply([lb("B", 120)]);
  assert.equal(sessions(r, "B"), 0, "B is new again: nothing known before it");
});

test("an object that did not move is handed out again as the same copy; one that moved gets a new copy with its delta", () => {
  const t = new DeltaTracker("zero");
  const quiet = { ...zeroCounters(), totalSessions: 3 };
  const mk = (busy: Counters, status: "OPEN" | "STOPPED" = "OPEN"): LoadBalancerStats => ({
    lbId: "A", running: true, reloads: 0, currentConnections: 0, statusClock: 0, pools: [],
    listeners: [
      { listenerId: "quiet", status: "OPEN", rawStatus: "OPEN", currentSessions: 0, maxSessions: 0, sessionLimit: 0, totals: quiet },
      { listenerId: "busy", status, rawStatus: "OPEN", currentSessions: 0, maxSessions: 0, sessionLimit: 0, totals: busy },
    ],
  });
  // The accumulator hands out the same totals object while nothing was counted.
  const t10 = { ...zeroCounters(), totalSessions: 10 };
  const t15 = { ...zeroCounters(), totalSessions: 15 };
  t.apply([mk(t10)]);
  const second = t.apply([mk(t15)]);
  assert.equal(second[0]!.listeners[1]!.delta!.totalSessions, 5);
  const third = t.apply([mk(t15)]);
  assert.equal(third[0]!.listeners[0], second[0]!.listeners[0], "the quiet listener: the same copy");
  // Same totals object as before, but the copy before says +5: a new copy
  // with delta 0, never the copy that still says 5.
  assert.notEqual(third[0]!.listeners[1], second[0]!.listeners[1]);
  assert.equal(third[0]!.listeners[1]!.delta!.totalSessions, 0);
  const fourth = t.apply([mk(t15)]);
  assert.equal(fourth[0], third[0], "a load balancer where nothing moved: the same object");
  assert.equal(fourth[0]!.listeners[1]!.delta!.totalSessions, 0);
  // A status change is a change even with the same totals.
  const fifth = t.apply([mk(t15, "STOPPED")]);
  assert.notEqual(fifth[0], fourth[0]);
  assert.equal(fifth[0]!.listeners[1]!.status, "STOPPED");
  assert.equal(fifth[0]!.listeners[0], fourth[0]!.listeners[0]);
});
