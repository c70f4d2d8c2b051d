// Human output of the CLI, without an agent: ages and units, table rows
// that stay one line, multi-line values in key/value blocks, the stats
// lines' words, rates across an agent restart.
import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { timestampFromMs } from "@bufbuild/protobuf/wkt";
import { firstLine, formatAge, formatDuration, humanize, keyValues, table, timeRule } from "../../src/cli/output.js";
import { RateTracker, statsLines, totalsSinceLine } from "../../src/cli/stats-view.js";
import { CountersSchema, LoadBalancerStatsSchema } from "../../src/driver/index.js";

const plain = { color: false };

test("durations and ages", () => {
  assert.equal(formatDuration(850), "850 ms");
  assert.equal(formatDuration(4200), "4.2 s");
  assert.equal(formatDuration(200_000), "3m20s");
  assert.equal(formatDuration(2 * 3600_000 + 5 * 60_000), "2h05m");
  assert.equal(formatDuration(3 * 86400_000 + 4 * 3600_000), "3d04h");
  assert.equal(formatAge(0), "-", "0 is never");
  assert.equal(formatAge(1_000_000 - 200_000, 1_000_000), "3m20s ago");
});

test("a multi-line last action (haproxy's ALERT lines) stays on one table row", () => {
  const alert = "start failed: haproxy exited\n[ALERT] (1) : Binding [x:12] for frontend a: cannot bind socket\n[ALERT] (1) : Some protocols failed\n";
  assert.equal(firstLine(alert), "start failed: haproxy exited (+2 lines)");
  const t = table(["LB", "LAST_ACTION"], [["lb-1", firstLine(alert)]], plain);
  assert.equal(t.trimEnd().split("\n").length, 2);
});

test("times as ages and durations in key/value blocks; raw values in the JSON kept", () => {
  const now = Date.now();
  const status = { last_exit_at_ms: String(now - 65_000), oldest_lingering_seconds: "90", recent_actions: [{ action: "RELOAD", finished_at_ms: String(now - 1500), duration_ms: 120 }] };
  const shown = humanize(status, timeRule) as any;
  assert.match(shown.last_exit_at_ms, /^1m0[45]s ago$/);
  assert.equal(shown.oldest_lingering_seconds, "1m30s");
  assert.match(shown.recent_actions[0].finished_at_ms, /^1\.[4-6] s ago$/);
  assert.equal(shown.recent_actions[0].duration_ms, "120 ms");
  assert.equal(status.last_exit_at_ms, String(now - 65_000), "the input is not changed");
  const kv = keyValues({ last_action: "reload failed\n[ALERT] x\n[ALERT] y", state: "ERROR" }, plain);
  assert.equal(kv, "last_action: reload failed\n             [ALERT] x\n             [ALERT] y\nstate:       ERROR\n");
});

test("stats lines say new_workers (the agent's count), not reloads (haproxy's own counter)", () => {
  const lb = create(LoadBalancerStatsSchema, { lbId: "lb-1", running: true, reloads: 2n });
  const [line] = statsLines([lb], "T", new RateTracker(), 0);
  assert.match(line!, /new_workers=2/);
  assert.doesNotMatch(line!, /reloads=/);
  assert.match(totalsSinceLine(timestampFromMs(Date.now() - 65_000)), /^totals since \S+Z \(1m0[45]s ago/);
});

test("rates are not taken across a change of totals_since (the agent restarted)", () => {
  const t = new RateTracker();
  const c = (n: bigint) => create(CountersSchema, { totalSessions: n, requests: n, bytesIn: n, bytesOut: n });
  t.epoch(timestampFromMs(1000));
  t.rate("l", 1000, c(100n));
  t.commit();
  t.epoch(timestampFromMs(1000));
  assert.equal(t.rate("l", 2000, c(150n))!.sessions, 50, "same epoch: a rate");
  t.commit();
  t.epoch(timestampFromMs(5000));
  assert.equal(t.rate("l", 3000, c(160n)), undefined, "new epoch: no rate, even though the counter grew");
});
