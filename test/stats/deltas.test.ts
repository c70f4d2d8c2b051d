// DeltaTracker on its own (pure logic): deltas never negative, and a look
// at some load balancers keeps the others' baselines when asked to.
import { test } from "node:test";
import assert from "node:assert/strict";
import { DeltaTracker } from "../../src/stats/deltas.js";
import { zeroCounters, type LoadBalancerStats } from "../../src/stats/model.js";

function lb(lbId: string, totalSessions: number): LoadBalancerStats {
  return {
    lbId, running: true, pools: [], reloads: 0, currentConnections: 0,
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
