// LbAccumulator hands out the same totals object while an object's raw
// counters do not move (consumers compare by identity); pure logic fed with
// show stat CSV, so every counter change, reset and reload can be forced.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LbAccumulator } from "../../src/stats/accumulator.js";
import { DeltaTracker } from "../../src/stats/deltas.js";
import { secondsSinceStatusChange } from "../../src/stats/model.js";
import { parseShowStat, type RawLbStats } from "../../src/stats/haproxy-stats.js";
import { diffLb } from "../../src/stats/watch-hub.js";

const HEADER = "# pxname,svname,scur,smax,slim,stot,bin,bout,ereq,econ,eresp,weight,lastchg,status,type,check_status,chkfail,hrsp_2xx,req_tot\n";
function poll(pid: string, o: { stot?: number; bin?: number; lastchg?: number; status?: string }): RawLbStats {
  const { stot = 5, bin = 100, lastchg = 10, status = "UP" } = o;
  const text = HEADER +
    `L1,FRONTEND,0,1,100,${stot},${bin},50,0,,,,,OPEN,0,,,${stot},${stot}\n` +
    `P1:L1,m1,0,1,,${stot},${bin},50,,0,0,1,${lastchg},${status},2,L4OK,0,${stot},\n` +
    `P1:L1,BACKEND,0,1,,${stot},${bin},50,,0,0,1,${lastchg},UP,1,,,${stot},${stot}\n`;
  return { workerPid: pid, uptimeSec: 100, currentConnections: 0, table: parseShowStat(text) };
}
const member = (s: ReturnType<LbAccumulator["apply"]>) => s.pools[0]!.members[0]!;

test("unchanged counters reuse the totals object; a change in lastchg alone still shows its new value", () => {
  const acc = new LbAccumulator("lb");
  const a = acc.apply(poll("1", { lastchg: 10 }));
  const b = acc.apply(poll("1", { lastchg: 11 }));
  assert.equal(member(b).totals, member(a).totals, "same totals object while nothing was counted");
  assert.equal(b.listeners[0]!.totals, a.listeners[0]!.totals);
  assert.equal(secondsSinceStatusChange(b, member(b)), 11, "lastchg is read from every poll");
  assert.equal(member(b), member(a), "the same member object: only lastchg moved, by as much as the status clock");
  // A status change with the same counters is not hidden by the reuse.
  const c = acc.apply(poll("1", { lastchg: 0, status: "DOWN" }));
  assert.equal(member(c).status, "DOWN");
  assert.equal(secondsSinceStatusChange(c, member(c)), 0);
  assert.ok(diffLb(b, c), "the status change is a change");
});

test("a changed counter is never missed: totals, deltas and CHANGES all see it", () => {
  const acc = new LbAccumulator("lb");
  const t = new DeltaTracker("zero");
  const s1 = acc.apply(poll("1", {}));
  const d1 = t.apply([s1])[0]!;
  const s2 = acc.apply(poll("1", {}));
  const d2 = t.apply([s2])[0]!;
  assert.equal(member(d2).delta!.totalSessions, 0);
  assert.equal(diffLb(d1, d2), undefined, "nothing changed: nothing to send");
  const s3 = acc.apply(poll("1", { bin: 101 }));
  const d3 = t.apply([s3])[0]!;
  assert.notEqual(member(s3).totals, member(s2).totals);
  assert.equal(member(s3).totals!.bytesIn, 101);
  assert.equal(member(d3).delta!.bytesIn, 1);
  assert.equal(member(d3).delta!.totalSessions, 0);
  const changes = diffLb(d2, d3);
  assert.equal(changes?.pools[0]?.members.length, 1, "the member whose bytes moved is sent");
  assert.equal(changes?.listeners[0]?.totals?.bytesIn, 101);
});

test("counter resets and reloads carry totals correctly with the reuse in place", () => {
  const acc = new LbAccumulator("lb");
  acc.apply(poll("1", { stot: 5, bin: 100 }));
  acc.apply(poll("1", { stot: 5, bin: 100 })); // reused
  // clear counters on the same worker: carried, then counting again from 0.
  const r = acc.apply(poll("1", { stot: 1, bin: 10 }));
  assert.equal(member(r).totals!.totalSessions, 6);
  assert.equal(member(r).totals!.bytesIn, 110);
  const r2 = acc.apply(poll("1", { stot: 1, bin: 10 }));
  assert.equal(member(r2).totals, member(r).totals, "reused after the carry too");
  // A reload whose new worker happens to report the very same raw counters
  // must not hand out the old totals.
  const n = acc.apply(poll("2", { stot: 1, bin: 10 }));
  assert.equal(member(n).totals!.totalSessions, 7);
  assert.equal(member(n).totals!.bytesIn, 120);
  assert.equal(n.reloads, 1);
});

test("the shared no-change delta cannot be written to", () => {
  const acc = new LbAccumulator("lb");
  const t = new DeltaTracker("zero");
  t.apply([acc.apply(poll("1", {}))]);
  const d = t.apply([acc.apply(poll("1", {}))])[0]!;
  assert.throws(() => { (member(d).delta as { bytesIn: number }).bytesIn = 5; }, TypeError);
});

test("what the accumulator keeps does not hold earlier show stat answers in memory", async () => {
  // A slice of a long string is a view of the whole string, and a
  // subarray of a Buffer a view of its memory: ids and remembered lines
  // cut from an answer kept that answer alive (3.7 MB per poll for a big
  // load balancer). Each poll here carries 4 MB of padding in a comment
  // line; poll k changes the lines of listener k alone, so the memo keeps
  // entries (and objects) made from each of the 8 polls; without copies,
  // 8 polls keep ~32 MB (in the JS heap, or outside it for Buffers: both
  // are counted).
  const { setFlagsFromString } = await import("node:v8");
  const { runInNewContext } = await import("node:vm");
  setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  const pad = `# ${"x".repeat(4 * 1024 * 1024)}\n`;
  const uuid = (i: number, k: number) => `${String(i).padStart(8, "0")}-0000-4000-8000-${String(k).padStart(12, "0")}`;
  const answer = (k: number) => {
    let rows = HEADER;
    for (let i = 0; i < 20; i++) {
      const l = uuid(i, 0);
      const v = i >= 1 && i <= 8 && k >= i ? 2 : 1;
      rows += `${l},FRONTEND,0,1,100,${v},${v},50,0,,,,,OPEN,0,,,${v},${v}\n`;
      rows += `${uuid(i, 1)}:${l},${uuid(i, 2)},0,1,,${v},${v},50,,0,0,1,10,UP,2,L4OK,0,${v},\n`;
      rows += `${uuid(i, 1)}:${l},BACKEND,0,1,,${v},${v},50,,0,0,1,10,UP,1,,,${v},${v}\n`;
    }
    // Fresh bytes per poll, as read from haproxy.
    return Buffer.from(`${rows}${pad}`);
  };
  const acc = new LbAccumulator("lb");
  const kept = [];
  gc();
  const held = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const before = held();
  for (let k = 1; k <= 8; k++) kept.push(acc.apply({ workerPid: "1", uptimeSec: 100 + k, currentConnections: 0, table: parseShowStat(answer(k)) }));
  gc();
  const grown = (held() - before) / 1024 / 1024;
  assert.equal(kept.at(-1)!.pools[0]!.members[0]!.memberId, uuid(0, 2));
  assert.equal(acc.memo.misses, 60 + 7 * 3, "each poll after the first changed three lines");
  assert.ok(grown < 12, `the accumulator and the stats it handed out hold ${grown.toFixed(1)} MB after 8 polls of 4 MB answers`);
});

test("every member reports haproxy's lastchg exactly, whatever moved; members whose lastchg only counted up stay the same objects", () => {
  // Members a..d; each poll gives their lastchg (and stot for traffic).
  const answer = (m: Record<string, { lastchg: number; stot?: number; status?: string }>) => {
    let text = HEADER + "L1,FRONTEND,0,1,100,5,100,50,0,,,,,OPEN,0,,,5,5\n";
    for (const [id, { lastchg, stot = 5, status = "UP" }] of Object.entries(m)) {
      text += `P1:L1,${id},0,1,,${stot},100,50,,0,0,1,${lastchg},${status},2,L4OK,0,${stot},\n`;
    }
    text += "P1:L1,BACKEND,0,1,,5,100,50,,0,0,1,7,UP,1,,,5,5\n";
    return { workerPid: "1", uptimeSec: 100, currentConnections: 0, table: parseShowStat(text) };
  };
  const acc = new LbAccumulator("lb");
  const check = (s: ReturnType<LbAccumulator["apply"]>, want: Record<string, number>) =>
    assert.deepEqual(Object.fromEntries(s.pools[0]!.members.map((m) => [m.memberId, secondsSinceStatusChange(s, m)])), want);
  const byId = (s: ReturnType<LbAccumulator["apply"]>) => new Map(s.pools[0]!.members.map((m) => [m.memberId, m]));
  const p1 = acc.apply(answer({ a: { lastchg: 10 }, b: { lastchg: 20 }, c: { lastchg: 30 }, d: { lastchg: 40 } }));
  check(p1, { a: 10, b: 20, c: 30, d: 40 });
  // One second on: all count up; c also counted traffic (its line changed).
  const p2 = acc.apply(answer({ a: { lastchg: 11 }, b: { lastchg: 21 }, c: { lastchg: 31, stot: 6 }, d: { lastchg: 41 } }));
  check(p2, { a: 11, b: 21, c: 31, d: 41 });
  for (const id of ["a", "b", "d"]) assert.equal(byId(p2).get(id), byId(p1).get(id), `${id}: same object`);
  // a flapped back to UP within the interval (lastchg restarted, nothing
  // else moved), b went DOWN, d counted up: a, first in the answer, makes
  // a clock that fits no one else; the values are exact all the same.
  const p3 = acc.apply(answer({ a: { lastchg: 0 }, b: { lastchg: 0, status: "DOWN" }, c: { lastchg: 32, stot: 6 }, d: { lastchg: 42 } }));
  check(p3, { a: 0, b: 0, c: 32, d: 42 });
  assert.equal(byId(p3).get("b")!.status, "DOWN");
  // Five seconds later: everyone counted up by 5; the clock follows.
  const p4 = acc.apply(answer({ a: { lastchg: 5 }, b: { lastchg: 5, status: "DOWN" }, c: { lastchg: 37, stot: 6 }, d: { lastchg: 47 } }));
  check(p4, { a: 5, b: 5, c: 37, d: 47 });
  for (const id of ["a", "b", "c", "d"]) assert.equal(byId(p4).get(id), byId(p3).get(id), `${id}: same object after the clock moved by 5`);
});
