// The health heartbeat as a health manager sees it: a UDP socket on
// 127.0.0.1 receives the datagrams of a real agent watching a real haproxy
// (through a catalog this test controls, see test/stats/fixture.ts),
// checks the HMAC, inflates, and compares the numbers with the traffic sent.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createSocket, type Socket } from "node:dgram";
import type { AddressInfo } from "node:net";
import { decodeHeartbeat, encodeHeartbeat, type HeartbeatMessage } from "../../src/heartbeat/message.js";
import { startTestAgent } from "../support/agent.js";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";
import { testEnv, until } from "../stats/fixture.js";

async function healthManager(): Promise<{ sock: Socket; port: number; datagrams: Buffer[] }> {
  const sock = createSocket("udp4");
  const datagrams: Buffer[] = [];
  sock.on("message", (m) => datagrams.push(m));
  await new Promise<void>((r) => sock.bind(0, "127.0.0.1", () => r()));
  return { sock, port: (sock.address() as AddressInfo).port, datagrams };
}

test("encode/decode: zlib + hex HMAC-SHA256; another key fails", () => {
  const msg: HeartbeatMessage = { id: "a", seq: 1, ver: 3, listeners: {}, pools: {} };
  const d = encodeHeartbeat(msg, "secret");
  assert.deepEqual(decodeHeartbeat(d, "secret"), msg);
  assert.match(d.subarray(d.length - 64).toString("ascii"), /^[0-9a-f]{64}$/);
  assert.throws(() => decodeHeartbeat(d, "other"), /HMAC/);
  const tampered = Buffer.from(d);
  tampered[2] = tampered[2]! ^ 1;
  assert.throws(() => decodeHeartbeat(tampered, "secret"), /HMAC/);
});

test("heartbeats carry deltas matching the traffic, seq increases, key/targets/interval change live through UpdateAgentConfig", async () => {
  const env = await testEnv();
  const hm1 = await healthManager();
  const hm2 = await healthManager();
  after(async () => {
    hm1.sock.close();
    hm2.sock.close();
    await env.cleanup();
  });
  const lb = await env.startLb({ members: 2 });
  env.catalog.put(lb.ref());
  const agent = await startTestAgent({
    catalog: env.catalog,
    overrides: { heartbeatTargets: [{ host: "127.0.0.1", port: hm1.port }], heartbeatIntervalS: 1, heartbeatKey: "key-one" },
  });
  after(() => agent.cleanup());
  const amphoraId = agent.config.amphoraId;
  await agent.ctx.monitoring.heartbeat.ready;

  await lb.traffic(7);
  // Heartbeats until the 7 sessions have been reported and one more after.
  const total = (msgs: HeartbeatMessage[], f: (s: HeartbeatMessage["listeners"][string]["stats"]) => number) =>
    msgs.reduce((n, m) => n + (m.listeners[lb.listenerId] ? f(m.listeners[lb.listenerId]!.stats) : 0), 0);
  const decoded = () => hm1.datagrams.map((d) => decodeHeartbeat(d, "key-one"));
  await until("7 sessions reported", () => (total(decoded(), (s) => s.totconns) >= 7 ? true : undefined), 8000);
  await lb.traffic(2);
  await until("9 sessions reported", () => (total(decoded(), (s) => s.totconns) >= 9 ? true : undefined), 8000);
  const msgs = decoded();

  assert.throws(() => decodeHeartbeat(hm1.datagrams[0]!, "not-the-key"), /HMAC/, "another key fails the check");
  msgs.forEach((m, i) => {
    assert.equal(m.ver, 3);
    assert.equal(m.id, amphoraId);
    if (i) assert.equal(m.seq, msgs[i - 1]!.seq + 1, "seq increases by one");
  });
  assert.equal(total(msgs, (s) => s.totconns), 9, "deltas add up to the sessions sent");
  // Bytes: the sum of deltas equals haproxy's own counters.
  const stats = (await agent.ctx.monitoring.collector.collect(lb.ref())).stats.listeners[0]!.totals!;
  assert.equal(total(msgs, (s) => s.rx), stats.bytesIn);
  assert.equal(total(msgs, (s) => s.tx), stats.bytesOut);
  assert.equal(total(msgs, (s) => s.ereq), 0);
  const last = msgs.at(-1)!;
  assert.equal(last.listeners[lb.listenerId]!.status, "OPEN");
  assert.equal(last.listeners[lb.listenerId]!.stats.conns, 0, "conns is the current count");
  assert.deepEqual(Object.keys(last.pools), [lb.poolName]);
  assert.deepEqual(Object.keys(last.pools[lb.poolName]!.members).sort(), [...lb.memberIds].sort());
  assert.equal(last.pools[lb.poolName]!.members[lb.memberIds[0]!], "no check");

  // A reload restarts haproxy's counters; deltas stay >= 0 and keep counting.
  await lb.reload();
  env.catalog.put(lb.ref(), "reloaded");
  await lb.traffic(4);
  await until("13 sessions", () => (total(decoded(), (s) => s.totconns) >= 13 ? true : undefined), 8000);
  for (const m of decoded()) for (const l of Object.values(m.listeners)) for (const v of Object.values(l.stats)) assert.ok(v >= 0);
  assert.equal(total(decoded(), (s) => s.totconns), 13);

  // UpdateAgentConfig (PUT /1.0/config): new target and key, no restart.
  const system = agent.client(SystemService);
  await system.updateAgentConfig({
    config: `[health_manager]\ncontroller_ip_port_list = 127.0.0.1:${hm2.port}\nheartbeat_key = key-two\nheartbeat_interval = 1\n`,
  });
  const n1 = hm1.datagrams.length;
  await until("heartbeat at the new target", () => hm2.datagrams.length >= 2 || undefined, 8000);
  const m2 = hm2.datagrams.map((d) => decodeHeartbeat(d, "key-two"));
  assert.throws(() => decodeHeartbeat(hm2.datagrams[0]!, "key-one"), /HMAC/);
  assert.equal(m2[1]!.seq, m2[0]!.seq + 1);
  assert.ok(m2[0]!.seq > msgs.at(-1)!.seq, "seq keeps increasing across the change");
  assert.ok(hm1.datagrams.length <= n1 + 1, "old target no longer used");

  // A longer interval takes effect at once too: at a 1 s interval three
  // more datagrams would come in 3.5 s, at 60 s at most the one already due.
  await system.updateAgentConfig({
    config: `[health_manager]\ncontroller_ip_port_list = 127.0.0.1:${hm2.port}\nheartbeat_key = key-two\nheartbeat_interval = 60\n`,
  });
  const n2 = hm2.datagrams.length;
  await new Promise((r) => setTimeout(r, 3500));
  assert.ok(hm2.datagrams.length <= n2 + 1, `interval 60 s: ${hm2.datagrams.length - n2} datagrams in 3.5 s`);
});
