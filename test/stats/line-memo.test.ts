// The line memo lets the accumulator skip show stat lines that did not
// change since the previous poll (lastchg aside). These tests change one
// field at a time with everything else equal, so a memo that answered from
// a stale line would fail them. Pure logic fed with CSV text; each line
// lies inside a bigger buffer with other bytes around it (as in an answer),
// so a memo that read past a line's bounds would fail them too.
import { test } from "node:test";
import assert from "node:assert/strict";
import { LineMemo } from "../../src/stats/line-memo.js";
import { LbAccumulator } from "../../src/stats/accumulator.js";
import { DeltaTracker } from "../../src/stats/deltas.js";
import { secondsSinceStatusChange } from "../../src/stats/model.js";
import { parseShowStat, type RawLbStats } from "../../src/stats/haproxy-stats.js";

/** A line where the memo meets it: inside an answer, between other bytes. */
function L(line: string): [Buffer, number, number] {
  const before = "x,1,2,3\n";
  const b = Buffer.from(`${before}${line}\n9,9,9,9,9,9,9\n`);
  const s = Buffer.byteLength(before);
  return [b, s, s + Buffer.byteLength(line)];
}

test("a line equal but for lastchg hits and reads the new lastchg; any other change misses", () => {
  const m = new LineMemo<string>();
  // lastchg is column 3.
  m.begin("h", 3, 1);
  assert.equal(m.lookup(0, ...L("px,sv,5,10,UP,x")), undefined);
  m.store(0, ...L("px,sv,5,10,UP,x"), "v1");
  assert.equal(m.lookup(0, ...L("px,sv,5,10,UP,x")), "v1");
  assert.equal(m.lookup(0, ...L("px,sv,5,11,UP,x")), "v1", "lastchg moved");
  assert.equal(m.lastchg(...L("px,sv,5,11,UP,x")), 11);
  assert.equal(m.lookup(0, ...L("px,sv,5,100,UP,x")), "v1", "lastchg got longer");
  assert.equal(m.lastchg(...L("px,sv,5,100,UP,x")), 100);
  assert.equal(m.lookup(0, ...L("px,sv,6,10,UP,x")), undefined, "a counter before lastchg, same length");
  assert.equal(m.lookup(0, ...L("px,sv,5,10,DOWN,x")), undefined, "a field after lastchg");
  assert.equal(m.lookup(0, ...L("px,sv,5,10,UP,y")), undefined, "the last field");
  assert.equal(m.lookup(0, ...L("px,sv,5,10,UP,x,")), undefined, "one more field");
  assert.equal(m.lookup(0, ...L("px,sv,5,10,UP")), undefined, "one field less");
  assert.equal(m.lookup(1, ...L("px,sv,5,10,UP,x")), undefined, "another index");
  // Another header: columns may mean something else now.
  m.begin("h2", 3, 1);
  assert.equal(m.lookup(0, ...L("px,sv,5,10,UP,x")), undefined);
  m.store(0, ...L("px,sv,5,10,UP,x"), "v3");
  m.forget(0);
  assert.equal(m.lookup(0, ...L("px,sv,5,10,UP,x")), undefined, "forgotten");
});

test("lines without a lastchg field are compared whole", () => {
  const m = new LineMemo<string>();
  m.begin("h", -1, 1);
  m.store(0, ...L("a,b"), "v");
  assert.equal(m.lookup(0, ...L("a,b")), "v");
  assert.equal(m.lookup(0, ...L("a,bc")), undefined, "longer without another comma");
  assert.equal(m.lookup(0, ...L("a,c")), undefined);
  // A line too short to reach lastchg (column 5) is compared whole too.
  m.begin("h3", 5, 1);
  m.store(0, ...L("a,b"), "w");
  assert.equal(m.lookup(0, ...L("a,b")), "w");
  assert.equal(m.lookup(0, ...L("a,bc")), undefined);
  assert.equal(m.lookup(0, ...L("a,b,")), undefined);
  assert.equal(m.lastchg(...L("a,b")), 0);
});

test("lines past the end of a shorter answer are forgotten", () => {
  const m = new LineMemo<string>();
  m.begin("h", 1, 2);
  m.store(0, ...L("a,1,x"), "0");
  m.store(1, ...L("b,1,x"), "1");
  m.begin("h", 1, 1);
  m.begin("h", 1, 2);
  assert.equal(m.lookup(0, ...L("a,2,x")), "0");
  assert.equal(m.lookup(1, ...L("b,2,x")), undefined);
});

// ---- through the accumulator

const HEADER = "# pxname,svname,scur,smax,slim,stot,bin,bout,ereq,econ,eresp,weight,lastchg,status,type,check_status,chkfail,hrsp_2xx,req_tot\n";
interface Row { stot?: number; bin?: number; lastchg?: number; status?: string; weight?: number; check?: string; scur?: number; lstot?: number; lstatus?: string }
function poll(pid: string, o: Row, extraMember = false): RawLbStats {
  const { stot = 5, bin = 100, lastchg = 10, status = "UP", weight = 1, check = "L4OK", scur = 0, lstot = stot, lstatus = "OPEN" } = o;
  const text = HEADER +
    `L1,FRONTEND,0,1,100,${lstot},${bin},50,0,,,,,${lstatus},0,,,${lstot},${lstot}\n` +
    (extraMember ? `P1:L1,m0,0,1,,1,1,1,,0,0,1,3,UP,2,L4OK,0,1,\n` : "") +
    `P1:L1,m1,${scur},1,,${stot},${bin},50,,0,0,${weight},${lastchg},${status},2,${check},0,${stot},\n` +
    `P1:L1,BACKEND,${scur},1,,${stot},${bin},50,,0,0,${weight},${lastchg},UP,1,,,${stot},${stot}\n`;
  return { workerPid: pid, uptimeSec: 100, currentConnections: 0, table: parseShowStat(text) };
}
const member = (s: ReturnType<LbAccumulator["apply"]>, id = "m1") => s.pools[0]!.members.find((m) => m.memberId === id)!;

test("a counter that moves while the rest of the line stays (same lastchg) is never served stale", () => {
  const acc = new LbAccumulator("lb");
  const t = new DeltaTracker("zero");
  t.apply([acc.apply(poll("1", {}))]);
  const same = acc.apply(poll("1", {}));
  t.apply([same]);
  assert.ok(acc.memo.hits >= 3, "the unchanged lines were served from the memo (else this test proves nothing)");
  const s = acc.apply(poll("1", { bin: 101 }));
  const d = t.apply([s])[0]!;
  assert.equal(member(s).totals!.bytesIn, 101);
  assert.equal(s.pools[0]!.totals!.bytesIn, 101);
  assert.equal(s.listeners[0]!.totals!.bytesIn, 101);
  assert.equal(member(d).delta!.bytesIn, 1);
  assert.equal(d.listeners[0]!.delta!.bytesIn, 1);
  // One digit more, same everything else.
  const s2 = acc.apply(poll("1", { bin: 1010, lstot: 50 }));
  assert.equal(member(s2).totals!.bytesIn, 1010);
  assert.equal(s2.listeners[0]!.totals!.totalSessions, 50);
  // Current sessions are not counters but are read again too.
  const s3 = acc.apply(poll("1", { bin: 1010, lstot: 50, scur: 3 }));
  assert.equal(member(s3).currentSessions, 3);
  assert.equal(s3.pools[0]!.currentSessions, 3);
});

test("status, weight and check changes with the same counters and lastchg are seen; lastchg alone is read every poll", () => {
  const acc = new LbAccumulator("lb");
  acc.apply(poll("1", {}));
  const hitsBefore = acc.memo.hits;
  const a = acc.apply(poll("1", { lastchg: 11 }));
  assert.ok(acc.memo.hits > hitsBefore);
  assert.equal(secondsSinceStatusChange(a, member(a)), 11);
  const b = acc.apply(poll("1", { lastchg: 11 }));
  assert.equal(member(b), member(a), "nothing moved: the very same member object");
  assert.equal(b.listeners[0], a.listeners[0], "and the same listener object");
  assert.equal(member(acc.apply(poll("1", { lastchg: 11, status: "DOWN" }))).status, "DOWN");
  assert.equal(member(acc.apply(poll("1", { lastchg: 11, weight: 0 }))).status, "DRAIN");
  assert.equal(member(acc.apply(poll("1", { lastchg: 11, check: "L4CON" }))).checkStatus, "L4CON");
  assert.equal(acc.apply(poll("1", { lastchg: 11, lstatus: "STOP" })).listeners[0]!.status, "STOPPED");
  const back = acc.apply(poll("1", { lastchg: 12 }));
  assert.equal(member(back).status, "UP");
  assert.equal(member(back).checkStatus, "L4OK");
  assert.equal(back.listeners[0]!.status, "OPEN");
});

test("a new worker with the very same lines gets base + raw totals, not the memo's", () => {
  const acc = new LbAccumulator("lb");
  acc.apply(poll("1", { stot: 5, bin: 100 }));
  acc.apply(poll("1", { stot: 5, bin: 100 }));
  const n = acc.apply(poll("2", { stot: 5, bin: 100 }));
  assert.equal(member(n).totals!.totalSessions, 10);
  assert.equal(member(n).totals!.bytesIn, 200);
  assert.equal(n.listeners[0]!.totals!.bytesIn, 200);
  const n2 = acc.apply(poll("2", { stot: 5, bin: 100 }));
  assert.equal(member(n2).totals!.bytesIn, 200);
});

test("lines that move to other indexes (a member added) keep their own totals", () => {
  const acc = new LbAccumulator("lb");
  acc.apply(poll("1", { bin: 100 }));
  const s = acc.apply(poll("1", { bin: 100 }, true));
  assert.equal(member(s).totals!.bytesIn, 100);
  assert.equal(member(s, "m0").totals!.bytesIn, 1);
  assert.deepEqual(s.pools[0]!.members.map((m) => m.memberId), ["m0", "m1"]);
  const s2 = acc.apply(poll("1", { bin: 100 }));
  assert.deepEqual(s2.pools[0]!.members.map((m) => m.memberId), ["m1"]);
  assert.equal(member(s2).totals!.bytesIn, 100);
});

test("lines with quoted fields are always parsed again", () => {
  const acc = new LbAccumulator("lb");
  const q = (stot: number): RawLbStats => ({
    workerPid: "1", uptimeSec: 1, currentConnections: 0,
    table: parseShowStat(`# pxname,svname,stot,lastchg,type,status\n"L,1",FRONTEND,${stot},,0,OPEN\n`),
  });
  assert.equal(acc.apply(q(1)).listeners[0]!.totals!.totalSessions, 1);
  assert.equal(acc.apply(q(2)).listeners[0]!.listenerId, "L,1");
  assert.equal(acc.apply(q(3)).listeners[0]!.totals!.totalSessions, 3);
});
