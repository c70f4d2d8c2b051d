// Issue 14: racing lifecycle operations (uploads valid and invalid, start,
// stop, reload, delete on three load balancers, kill -9 of masters) must
// never leave a haproxy master the agent does not manage. Bounded version of
// the soak scenario soak/lifecycle.ts (same driver, test/support/lifecycle-stress.ts).
import { test } from "node:test";
import assert from "node:assert/strict";
import { describe, runLifecycleStress } from "../support/lifecycle-stress.js";

test("racing clients and kill -9 of masters leave at most one master per load balancer, each named by its pid file, none after delete-all", async () => {
  const r = await runLifecycleStress({ durationMs: 24_000, minOperations: 150, clients: 8, lbs: 3, killEveryMs: 1500, killStartingEveryMs: 1000, trace: true, log: console.log, checkEveryMs: 8000, quietMs: 2000 });
  const lines = describe(r);
  console.log(lines.join("\n"));
  // On the old code the first check (~120 operations) already found strays.
  assert.ok(r.operations >= 60, `too few operations to mean anything: ${r.operations}`);
  assert.deepEqual(r.violations, [], lines.join("\n"));
  assert.deepEqual(r.leftAfterDeleteAll, []);
});
