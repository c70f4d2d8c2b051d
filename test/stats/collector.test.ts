// Stats read from real haproxy: parsing by header name, typed statuses,
// monotonic totals across reloads and counter resets.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { cell, parseShowStat, rowAt } from "../../src/stats/haproxy-stats.js";
import { memberStatus } from "../../src/stats/accumulator.js";
import { StatsCollector } from "../../src/stats/collector.js";
import { DeltaTracker } from "../../src/stats/deltas.js";
import { silentLogger } from "../../src/log.js";
import { testEnv } from "./fixture.js";

const env = await testEnv();
after(() => env.cleanup());

test("show stat is parsed by header name, whatever the column order", () => {
  const a = "# pxname,svname,stot,status,type\nfe,FRONTEND,7,OPEN,0\n";
  const b = "# type,status,extra,stot,svname,pxname\n0,OPEN,x,7,FRONTEND,fe\n";
  for (const text of [a, b]) {
    const t = parseShowStat(text);
    const row = rowAt(t, 0);
    assert.deepEqual(
      [cell(row, t.columns.pxname), cell(row, t.columns.svname), cell(row, t.columns.stot), cell(row, t.columns.status), cell(row, t.columns.type)],
      ["fe", "FRONTEND", "7", "OPEN", "0"],
    );
    assert.equal(t.columns.bin, -1, "a column haproxy did not send");
    assert.equal(cell(row, t.columns.bin), "");
  }
  // Quoted fields with commas stay one field.
  const q = parseShowStat('# pxname,check_status,stot\n"x, y",L4OK,3\n');
  assert.equal(cell(rowAt(q, 0), q.columns.stot), "3");
  assert.equal(cell(rowAt(q, 0), q.columns.pxname), "x, y");
  assert.throws(() => parseShowStat("no header"), /header/);
});

test("member statuses: DRAIN is UP with weight 0", () => {
  assert.equal(memberStatus("UP", 1).status, "UP");
  assert.equal(memberStatus("UP", 0).status, "DRAIN");
  assert.equal(memberStatus("UP 1/3", 1).status, "UP");
  assert.equal(memberStatus("DOWN 1/2", 1).status, "DOWN");
  assert.equal(memberStatus("DRAIN", 0).status, "DRAIN");
  assert.equal(memberStatus("MAINT (via x/y)", 1).status, "MAINT");
  assert.equal(memberStatus("no check", 1).status, "NO_CHECK");
  assert.equal(memberStatus("no check", 1).word, "no check");
});

test("real haproxy: typed stats, traffic counted, statuses follow runtime changes", async () => {
  const lb = await env.startLb({ members: 2 });
  const collector = new StatsCollector({ catalog: env.catalog, logger: silentLogger });
  after(() => collector.close());
  const s0 = (await collector.collect(lb.ref())).stats;
  assert.equal(s0.running, true);
  assert.deepEqual(s0.listeners.map((l) => [l.listenerId, l.status]), [[lb.listenerId, "OPEN"]]);
  assert.equal(s0.pools.length, 1);
  assert.equal(s0.pools[0]!.name, lb.poolName);
  assert.equal(s0.pools[0]!.listenerId, lb.listenerId);
  assert.deepEqual(s0.pools[0]!.members.map((m) => m.memberId).sort(), [...lb.memberIds].sort());
  assert.equal(await lb.traffic(6), 6);
  const s1 = (await collector.collect(lb.ref())).stats;
  const l1 = s1.listeners[0]!;
  assert.equal(l1.totals!.totalSessions, 6);
  assert.equal(l1.totals!.requests, 6);
  assert.equal(l1.totals!.http2xx, 6);
  assert.ok(l1.totals!.bytesOut > 6 * 2, "bytes out counted");
  assert.equal(s1.pools[0]!.members.reduce((n, m) => n + m.totals!.totalSessions, 0), 6);

  const [m0, m1] = lb.memberIds;
  await lb.cli(`@1 set server ${lb.poolName}/${m0} weight 0`);
  await lb.cli(`@1 set server ${lb.poolName}/${m1} state maint`);
  const s2 = (await collector.collect(lb.ref())).stats;
  const st = new Map(s2.pools[0]!.members.map((m) => [m.memberId, m.status]));
  assert.equal(st.get(m0), "DRAIN");
  assert.equal(st.get(m1), "MAINT");
  await lb.cli(`@1 set server ${lb.poolName}/${m0} weight 1`);
  await lb.cli(`@1 set server ${lb.poolName}/${m1} state ready`);
});

test("totals stay monotonic across reloads and counter resets; deltas never negative", async () => {
  const lb = await env.startLb({ members: 1 });
  const collector = new StatsCollector({ catalog: env.catalog, logger: silentLogger });
  after(() => collector.close());
  const tracker = new DeltaTracker("zero");
  const look = async () => tracker.apply([(await collector.collect(lb.ref())).stats])[0]!;
  await look();
  await lb.traffic(5);
  const a = await look();
  assert.equal(a.listeners[0]!.totals!.totalSessions, 5);
  assert.equal(a.listeners[0]!.delta!.totalSessions, 5);

  // Reload: the new worker starts from zero; the agent carries the 5.
  await lb.reload();
  await lb.traffic(3);
  const b = await look();
  assert.equal(b.reloads, 1);
  assert.equal(b.listeners[0]!.totals!.totalSessions, 8);
  assert.equal(b.listeners[0]!.delta!.totalSessions, 3);
  assert.equal(b.pools[0]!.members[0]!.totals!.totalSessions, 8);

  // Same worker, counters cleared: detected by counters going down.
  await lb.cli("@1 clear counters all");
  await lb.traffic(2);
  const c = await look();
  assert.equal(c.reloads, 1, "not a reload: same worker");
  assert.equal(c.listeners[0]!.totals!.totalSessions, 10);
  assert.equal(c.listeners[0]!.delta!.totalSessions, 2);

  // A second reload with no traffic in between: delta 0, never negative.
  await lb.reload();
  const d = await look();
  assert.equal(d.reloads, 2);
  assert.equal(d.listeners[0]!.totals!.totalSessions, 10);
  for (const v of Object.values(d.listeners[0]!.delta!)) assert.ok(v >= 0);
  assert.equal(d.listeners[0]!.delta!.totalSessions, 0);
  assert.equal(collector.pollsOf(lb.lbId), 5);
});

test("a stopped load balancer reports STOPPED listeners and keeps its totals", async () => {
  const lb = await env.startLb({ members: 1 });
  const collector = new StatsCollector({ catalog: env.catalog, logger: silentLogger });
  after(() => collector.close());
  await lb.traffic(4);
  await collector.collect(lb.ref());
  await lb.stop();
  const polls = collector.polls;
  const s = (await collector.collect(lb.ref())).stats;
  assert.equal(collector.polls, polls, "no poll of a stopped load balancer");
  assert.equal(s.running, false);
  assert.equal(s.listeners[0]!.status, "STOPPED");
  assert.equal(s.listeners[0]!.totals!.totalSessions, 4);
});

test("a master that stopped answering (killed) is reported not running, totals kept", async () => {
  const lb = await env.startLb({ members: 1 });
  const collector = new StatsCollector({ catalog: env.catalog, logger: silentLogger });
  after(() => collector.close());
  await lb.traffic(2);
  await collector.collect(lb.ref());
  // The catalog has not noticed yet (ref still says running).
  const ref = lb.ref();
  const { readFileSync } = await import("node:fs");
  const { join } = await import("node:path");
  process.kill(Number(readFileSync(join(lb.dir, "haproxy.pid"), "utf8").trim()), "SIGKILL");
  await new Promise((r) => setTimeout(r, 100));
  const s = (await collector.collect(ref)).stats;
  assert.equal(collector.pollErrors, 1);
  assert.equal(s.running, false);
  assert.equal(s.listeners[0]!.status, "STOPPED");
  assert.equal(s.listeners[0]!.totals!.totalSessions, 2);
});

test("collected_at is when haproxy's answer had arrived, not when the agent had parsed and added it up", async () => {
  const lb = await env.startLb({ members: 2 });
  env.catalog.put(lb.ref());
  after(() => env.catalog.remove(lb.lbId));
  const { readRawStats } = await import("../../src/stats/haproxy-stats.js");
  const before = Date.now();
  const raw = await readRawStats(lb.sock);
  assert.ok(raw.readAt && raw.readAt.getTime() >= before && raw.readAt.getTime() <= Date.now());
  // The collector passes the reader's moment on, however long the rest takes.
  const answered = new Date(Date.now() - 5000);
  const slowParse = new StatsCollector({
    catalog: env.catalog, logger: silentLogger,
    read: (sock) => readRawStats(sock).then((r) => ({ ...r, readAt: answered })),
  });
  after(() => slowParse.close());
  const c = await slowParse.collect(lb.ref());
  assert.equal(c.collectedAt.getTime(), answered.getTime());
  assert.equal(c.stats.running, true);
});
