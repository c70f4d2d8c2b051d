// WatchEvents as a stream, with a real agent over real mutual-TLS HTTP/2:
// the agent-wide events (agent config, certificate rotation), every
// protocol, resume after cut connections with nothing lost or repeated
// (followEvents through a proxy that cuts them), out_of_range after the ring
// wrapped and after an agent restart (new epoch), and slow readers ended
// with resource_exhausted while their events can still be resumed.
//
// The resume and slow-reader tests publish into the agent's event log
// directly (agent.ctx.events.publish): what is tested there is the ring,
// the stream and the driver, and they need thousands of events quickly;
// where each kind of event comes from is tested with real haproxy,
// keepalived and namespaces in the other files.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { EventKind, EventService, type Event } from "../../src/gen/amphora/v1/events_pb.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { freePort } from "../support/haproxy.js";
import { issueCertificate } from "../../src/agent/dev-pki.js";
import { runChecked } from "../../src/system/exec.js";
import { createAmphoraClient, type AmphoraClient } from "../../src/driver/client.js";
import { followEvents, type FollowedEvent } from "../../src/driver/follow-events.js";
import type { AgentEvent } from "../../src/events/model.js";
import { assertContiguous, cuttableProxy, kindIs, readEvents } from "./support.js";

const filler = (n: number, detailBytes = 0): AgentEvent => ({
  kind: "config_rejected", target: "haproxy", lbId: "", reason: `test event ${n}`, details: "x".repeat(detailBytes), code: "TEST",
});

async function until(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    assert.ok(Date.now() < deadline, "timed out");
    await sleep(10);
  }
}

async function agentFor(t: TestContext, o: Parameters<typeof startTestAgent>[0] = {}): Promise<TestAgent> {
  const agent = await startTestAgent(o);
  t.after(() => agent.cleanup());
  return agent;
}

function driverFor(t: TestContext, agent: TestAgent, port = agent.port): AmphoraClient {
  const c = createAmphoraClient({ baseUrl: `https://127.0.0.1:${port}`, ca: agent.ca, cert: agent.cert, key: agent.key });
  t.after(() => c.close());
  return c;
}

/** Collects a followEvents iteration in the background. */
function follow(client: AmphoraClient, o: Parameters<typeof followEvents>[1] = {}) {
  const ac = new AbortController();
  const items: FollowedEvent[] = [];
  const reconnects: string[] = [];
  const done = (async () => {
    for await (const i of followEvents(client, { backoff: { initialMs: 20, maxMs: 200 }, ...o, signal: ac.signal, onReconnect: (x) => reconnects.push(x.error.reason || x.error.codeName) })) items.push(i);
  })();
  const events = () => items.flatMap((i) => (i.type === "event" ? [i.event] : []));
  return {
    items, reconnects, events, done,
    async until(what: string, pred: () => boolean, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      while (!pred()) {
        if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}; have ${items.length} items, reconnects ${reconnects.join(",")}`);
        await sleep(10);
      }
    },
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

test("agent config change and certificate rotation are events; the stream works over every protocol, never over REST", async (t) => {
  const agent = await agentFor(t);
  const tmp = mkdtempSync(join(tmpdir(), "amt-ev-cert-"));
  t.after(() => rmSync(tmp, { recursive: true, force: true }));
  const readers = (["connect", "connect-json", "grpc", "grpc-web"] as const).map((k) => readEvents(agent.client(EventService, k)));
  t.after(() => readers.forEach((r) => r.stop()));
  for (const r of readers) while (!r.start) await sleep(10);

  const sys = agent.client(SystemService);
  await sys.updateAgentConfig({ config: "[health_manager]\nheartbeat_interval = 7\n[haproxy_amphora]\nhaproxy_cmd = /usr/local/sbin/haproxy\n" });
  const changed = await readers[0]!.until("agent_config_changed", kindIs(EventKind.AGENT_CONFIG_CHANGED));
  assert.ok(changed.payload.case === "agentConfigChanged");
  assert.ok(changed.payload.value.applied.includes("heartbeatIntervalS"), changed.summary);
  assert.ok(changed.payload.value.restartNeeded.includes("haproxyCmd"), changed.summary);

  const pki = agent.pki!;
  const key = join(tmp, "k.pem");
  const crt = join(tmp, "c.pem");
  await runChecked("openssl", ["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", key]);
  await issueCertificate(pki, { keyPath: key, certPath: crt, cn: agent.config.amphoraId, sans: [agent.config.amphoraId, "127.0.0.1"] });
  await sys.rotateAgentCertificate({ pem: readFileSync(key, "utf8") + readFileSync(crt, "utf8") });
  const rotated = await readers[0]!.until("agent_certificate_rotated", kindIs(EventKind.AGENT_CERTIFICATE_ROTATED));
  assert.ok(rotated.payload.case === "agentCertificateRotated" && rotated.payload.value.subject.includes(agent.config.amphoraId) && rotated.payload.value.notAfter);

  // Every protocol carries the same events.
  for (const r of readers) {
    await r.until("both events", () => r.events.length >= 2);
    assert.deepEqual(r.events.map((e) => [e.seq, e.kind]), readers[0]!.events.map((e) => [e.seq, e.kind]));
  }
  // No REST route (Octavia has none).
  for (const path of ["/1.0/events", "/1.0/amphora.v1.EventService/WatchEvents"]) assert.equal((await get(agent, path)).status, 404, path);
  // Metrics: events published by kind, open streams.
  const metrics = (await get(agent, "/metrics")).body;
  assert.match(metrics, /^amphora_events_published_total\{kind="agent_config_changed"\} 1$/m);
  assert.match(metrics, /^amphora_events_published_total\{kind="agent_certificate_rotated"\} 1$/m);
  assert.match(metrics, /^amphora_event_subscribers 4$/m);
});

/** HTTP/1.1 GET on the agent's port. */
async function get(agent: TestAgent, path: string): Promise<{ status: number; body: string }> {
  const { request } = await import("node:https");
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port: agent.port, path, ca: agent.ca, cert: agent.cert, key: agent.key, method: "GET" }, (res) => {
      let body = "";
      res.setEncoding("utf8");
      res.on("data", (c) => (body += c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.end();
  });
}

test("followEvents resumes after cut connections: every event exactly once, in order", async (t) => {
  const agent = await agentFor(t);
  const proxy = await cuttableProxy(agent.port);
  t.after(() => proxy.close());
  const client = driverFor(t, agent, proxy.port);
  const f = follow(client);
  t.after(() => f.stop());
  await until(() => agent.ctx.events.subscriberCount === 1);
  agent.ctx.events.publish(filler(0));
  await f.until("first event", () => f.events().length === 1);
  let n = 1;
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 50; i++) agent.ctx.events.publish(filler(n++));
    // Cut an established stream (the subscription of the previous round is back).
    await until(() => agent.ctx.events.subscriberCount === 1);
    // No new connection until the agent has let the cut one go: a client
    // that reconnected first kept the count from ever reaching 0 (the old
    // subscription and the new one overlap), and the events below would
    // not all be published while no connection exists.
    proxy.hold(true);
    proxy.cut();
    // Published while no connection exists: the resume must bring them.
    for (let i = 0; i < 50; i++) agent.ctx.events.publish(filler(n++));
    await until(() => agent.ctx.events.subscriberCount === 0);
    proxy.hold(false);
  }
  await f.until("all events", () => f.events().length === n);
  assert.ok(f.reconnects.length >= 5, `reconnected ${f.reconnects.length} times`);
  const evs = f.events();
  assertContiguous(evs);
  assert.equal(evs[0]!.seq, 1n);
  assert.deepEqual(evs.map((e) => (e.payload.value as { reason: string }).reason), Array.from({ length: n }, (_, i) => `test event ${i}`));
  assert.ok(!f.items.some((i) => i.type === "resync"));
});

test("out_of_range after the ring wrapped: a raw resume fails with EVENTS_EVICTED; followEvents yields resync, then goes on live", async (t) => {
  const agent = await agentFor(t, { overrides: { eventRingSize: 16 } });
  const log = agent.ctx.events;
  for (let i = 0; i < 40; i++) log.publish(filler(i));
  const r = readEvents(agent.client(EventService), { sinceSeq: 3n, epoch: log.epoch });
  await r.done;
  assert.equal(r.error?.code, Code.OutOfRange);
  assert.equal(r.error?.findDetails(ErrorInfoSchema)[0]?.reason, "EVENTS_EVICTED");
  assert.equal(r.events.length, 0, "nothing is sent for a resume point that cannot be served");
  // Still held: resumes fine.
  const ok = readEvents(agent.client(EventService), { sinceSeq: 30n, epoch: log.epoch });
  t.after(() => ok.stop());
  await ok.until("event 40", (e) => e.seq === 40n);
  assertContiguous(ok.events, 30n);

  // A follower cut off while the ring wraps past it.
  const proxy = await cuttableProxy(agent.port);
  t.after(() => proxy.close());
  const f = follow(driverFor(t, agent, proxy.port));
  t.after(() => f.stop());
  await until(() => log.subscriberCount === 2);
  log.publish(filler(100));
  await f.until("live", () => f.events().length === 1);
  proxy.hold(true);
  proxy.cut();
  for (let i = 0; i < 40; i++) log.publish(filler(101 + i));
  proxy.hold(false);
  await f.until("resync", () => f.items.some((i) => i.type === "resync"));
  const resync = f.items.find((i) => i.type === "resync")!;
  assert.ok(resync.type === "resync" && resync.reason === "EVENTS_EVICTED" && resync.from?.seq === 41n);
  // The resync item came once the live stream was in place: nothing after it is missed.
  log.publish(filler(200));
  await f.until("live after resync", () => f.events().some((e) => (e.payload.value as { reason: string }).reason === "test event 200"));
  assert.equal(f.items.at(-1)!.type, "event");
});

test("an agent restart is a new epoch: resuming with the old one is out_of_range (EPOCH_CHANGED), and followEvents says resync", async (t) => {
  const stateDir = mkdtempSync(join(tmpdir(), "amt-ev-epoch-"));
  t.after(() => rmSync(stateDir, { recursive: true, force: true }));
  const port = await freePort();
  let agent = await startTestAgent({ stateDir, listen: `127.0.0.1:${port}` });
  t.after(() => agent.cleanup());
  const first = agent.ctx.events.epoch;
  const client = driverFor(t, agent, port);
  const f = follow(client);
  t.after(() => f.stop());
  await until(() => agent.ctx.events.subscriberCount === 1);
  agent.ctx.events.publish(filler(1));
  await f.until("first event", () => f.events().length === 1);

  await agent.cleanup();
  agent = await startTestAgent({ stateDir, listen: `127.0.0.1:${port}` });
  assert.notEqual(agent.ctx.events.epoch, first);
  await f.until("resync", () => f.items.some((i) => i.type === "resync"));
  const resync = f.items.find((i) => i.type === "resync")!;
  assert.ok(resync.type === "resync" && resync.reason === "EPOCH_CHANGED" && resync.from?.epoch === first && resync.from.seq === 1n);
  agent.ctx.events.publish(filler(2));
  await f.until("event of the new epoch", () => f.events().some((e) => e.epoch === agent.ctx.events.epoch));
  assert.equal(f.events().at(-1)!.seq, 1n, "numbering starts again in the new epoch");

  const raw = readEvents(agent.client(EventService), { sinceSeq: 1n, epoch: first });
  await raw.done;
  assert.equal(raw.error?.code, Code.OutOfRange);
  assert.equal(raw.error?.findDetails(ErrorInfoSchema)[0]?.reason, "EPOCH_CHANGED");
});

test("a slow reader is ended with resource_exhausted (SLOW_CONSUMER) while its events are held; resuming loses nothing", async (t) => {
  // Events of 2 KiB, published faster than the reader takes them: the agent
  // sees the reader's lag each time the transport asks for the next message.
  const agent = await agentFor(t, { overrides: { eventRingSize: 10_000 }, eventMaxLag: 500 });
  const log = agent.ctx.events;
  const got: Event[] = [];
  let error: ConnectError | undefined;
  const stream = agent.client(EventService).watchEvents({});
  const it = stream[Symbol.asyncIterator]();
  const startMsg = await it.next();
  assert.equal(startMsg.value?.message.case, "start");
  const total = 2000;
  for (let i = 0; i < total; i++) log.publish(filler(i, 2048));
  try {
    for (;;) {
      const m = await it.next();
      if (m.done) break;
      if (m.value.message.case === "event") got.push(m.value.message.value);
      await sleep(1);
    }
  } catch (e) {
    error = ConnectError.from(e);
  }
  assert.equal(error?.code, Code.ResourceExhausted, `stream ended with ${error?.message ?? "no error"} after ${got.length} events`);
  assert.equal(error?.findDetails(ErrorInfoSchema)[0]?.reason, "SLOW_CONSUMER");
  assert.ok(got.length < total);
  assertContiguous(got, 0n);
  // The rest is still in the ring: resume after the last one read.
  const rest = readEvents(agent.client(EventService), { sinceSeq: got.at(-1)?.seq ?? 0n, epoch: log.epoch });
  t.after(() => rest.stop());
  await rest.until("the last event", (e) => e.seq === BigInt(total));
  assertContiguous([...got, ...rest.events], 0n);
  assert.equal(log.ended.get("SLOW_CONSUMER"), 1);
  assert.equal(log.subscriberCount, 1, "the ended stream's subscription is gone");

  // followEvents does the same by itself: every event exactly once.
  const seen: Event[] = [];
  const reading = (async () => {
    for await (const item of followEvents(driverFor(t, agent), { backoff: { initialMs: 20, maxMs: 200 } })) {
      if (item.type !== "event") continue;
      seen.push(item.event);
      // Slow at first, while the agent still has thousands to send.
      if (seen.length < 200) await sleep(2);
      if (seen.length === total) break;
    }
  })();
  await until(() => log.subscriberCount === 2);
  const before = log.headSeq;
  for (let i = 0; i < total; i++) log.publish(filler(i, 2048));
  await reading;
  assertContiguous(seen, BigInt(before));
  assert.equal(seen.length, total);
  assert.ok((log.ended.get("SLOW_CONSUMER") ?? 0) >= 2, "the follower was ended as slow at least once, and resumed");
});
