// The driver's flows on real agents driving real haproxy: apply (certs,
// config, start/reload), wait for ACTIVE, delete; fan-out over three agents
// with one down; followStats surviving an agent restart.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { freePort, startBackend, octaviaConfig, httpGet, killHaproxiesUnder, selfSignedPem } from "../support/haproxy.js";
import {
  createAmphoraClient,
  applyLoadBalancer,
  deleteLoadBalancer,
  waitForListenersActive,
  followStats,
  isKeepalive,
  WatchMode,
  fanOut,
  AmphoraError,
  Code,
  ListenerState,
  type AmphoraClient,
  type WatchStatsResponse,
} from "../../src/driver/index.js";
import type { Interceptor } from "@connectrpc/connect";

async function setup(t: TestContext, o: { stateDir?: string; listen?: string } = {}): Promise<{ agent: TestAgent; client: AmphoraClient; runDir: string }> {
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  const agent = await startTestAgent(o);
  const client = createAmphoraClient({ baseUrl: agent.url, ca: agent.ca, cert: agent.cert, key: agent.key });
  t.after(async () => {
    client.close();
    // The agent first (it would restart a haproxy that dies while it runs), then its haproxy.
    await agent.cleanup();
    await killHaproxiesUnder(agent.stateDir);
    rmSync(runDir, { recursive: true, force: true });
  });
  return { agent, client, runDir };
}

test("applyLoadBalancer: certificates first (unchanged ones skipped), config, start then reload; wait; delete", async (t) => {
  const { agent, client, runDir } = await setup(t);
  const a = await startBackend("backend-a");
  const b = await startBackend("backend-b");
  t.after(() => Promise.all([a.close(), b.close()]));
  const lbId = randomUUID();
  const amphoraId = agent.config.amphoraId;
  const port = await freePort();
  const pem = await selfSignedPem(runDir, "www.example.com");
  const v1 = octaviaConfig({ lbId, runDir, listeners: [{ port, members: [{ port: a.port }] }] });
  const listenerId = v1.listeners[0]!.id;

  const r1 = await applyLoadBalancer(client, { amphoraId, lbId, config: v1.text, certificates: [{ filename: "www.pem", pem: pem.bundle }] });
  assert.equal(r1.action, "start");
  assert.match(r1.details, /haproxy started with config version 1/);
  assert.deepEqual(r1.certificates.map((c) => [c.filename, c.uploaded]), [["www.pem", true]]);
  assert.match(r1.configMd5, /^[0-9a-f]{32}$/);
  const active = await waitForListenersActive(client, { lbId, timeoutMs: 10_000 });
  assert.deepEqual(active.map((l) => [l.uuid, l.status]), [[listenerId, "ACTIVE"]]);
  assert.equal((await httpGet(port)).body, "backend-a");

  // Same certificate, new members: the certificate is not sent again and the
  // RELOAD applies the member change on the running worker (issue 13).
  const v2 = octaviaConfig({ lbId, runDir, listeners: [{ ...v1.listeners[0]!, members: [{ port: b.port }] }] });
  const r2 = await applyLoadBalancer(client, { amphoraId, lbId, config: v2.text, certificates: [{ filename: "www.pem", pem: pem.bundle }], expectedMd5: r1.configMd5 });
  assert.equal(r2.action, "reload");
  assert.match(r2.details, /config version 2 runs: applied at runtime \(1 added, 1 removed/);
  assert.deepEqual(r2.certificates.map((c) => [c.filename, c.uploaded, c.md5]), [["www.pem", false, r1.certificates[0]!.md5]]);
  assert.ok(r2.configVersion > r1.configVersion);
  assert.equal((await httpGet(port)).body, "backend-b");

  // A stale expected md5 is refused before anything changes.
  const stale = await applyLoadBalancer(client, { amphoraId, lbId, config: v1.text, expectedMd5: r1.configMd5 }).then(
    () => assert.fail("stale md5 accepted"),
    (e: unknown) => e as AmphoraError,
  );
  assert.ok(stale instanceof AmphoraError);
  assert.equal(stale.code, Code.Aborted);
  assert.equal((await httpGet(port)).body, "backend-b");

  // A config haproxy rejects: the agent's haproxy -c output comes back as details.
  const broken = await applyLoadBalancer(client, { amphoraId, lbId, config: v2.text.replace("balance roundrobin", "balance no-such-algo") }).then(
    () => assert.fail("broken config accepted"),
    (e: unknown) => e as AmphoraError,
  );
  assert.equal(broken.code, Code.InvalidArgument);
  assert.match(broken.errorDetails, /no-such-algo|balance/);
  assert.equal((await httpGet(port)).body, "backend-b", "the previous config keeps serving");

  // The same input shape as the other flows; the older (lbId, options) form still works.
  await deleteLoadBalancer(client, { lbId });
  assert.deepEqual((await client.loadBalancer.listListeners({})).listeners.filter((l) => l.lbId === lbId), []);
  await assert.rejects(httpGet(port, "/", "127.0.0.1", 1000));
  await deleteLoadBalancer(client, lbId, {}); // idempotent, deprecated form
});

test("applyLoadBalancer: the reload carries the md5 it stored, so a config another controller stored in between is not put in service; no extra status call", async (t) => {
  const { agent, client: plain, runDir } = await setup(t);
  const lbId = randomUUID();
  const amphoraId = agent.config.amphoraId;
  const mine = octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), returnBody: "mine", members: [] }] });
  const theirs = octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), returnBody: "theirs", members: [] }] });
  const calls: string[] = [];
  let interleave = true;
  // Records the calls, and plays another controller: right after this
  // client's config is stored, it stores its own (a real second call to the agent).
  const recorder: Interceptor = (next) => async (req) => {
    calls.push(req.method.name);
    const res = await next(req);
    if (req.method.name === "PutConfig" && interleave) {
      interleave = false;
      await plain.loadBalancer.putConfig({ amphoraId, lbId, config: theirs.text });
    }
    return res;
  };
  const client = createAmphoraClient({ baseUrl: agent.url, ca: agent.ca, cert: agent.cert, key: agent.key, interceptors: [recorder] });
  t.after(() => client.close());
  const e = await applyLoadBalancer(client, { amphoraId, lbId, config: mine.text }).then(
    () => assert.fail("a config stored by someone else was started"),
    (x: unknown) => x as AmphoraError,
  );
  assert.equal(e.code, Code.Aborted, e.message);
  assert.equal(e.procedure, "amphora.v1.LoadBalancerService/ControlLoadBalancer");
  assert.equal((await plain.loadBalancer.getLoadBalancerStatus({ lbId })).status?.state, "STOPPED", "nothing was started");
  assert.deepEqual(calls, ["PutConfig", "ControlLoadBalancer"], "no round trip to ask whether haproxy runs");

  // Uncontested: stored, then reloaded (which starts a stopped load balancer) with the same guard.
  calls.length = 0;
  const r = await applyLoadBalancer(client, { amphoraId, lbId, config: mine.text });
  assert.equal(r.action, "start");
  assert.deepEqual(calls, ["PutConfig", "ControlLoadBalancer"]);
  assert.equal((await httpGet(mine.listeners[0]!.port)).body, "mine");
});

test("waitForListenersActive: an unknown load balancer fails at once; listeners the config does not have are named, not waited for", async (t) => {
  const { agent, client, runDir } = await setup(t);
  const unknown = randomUUID();
  const nf = await waitForListenersActive(client, { lbId: unknown, timeoutMs: 60_000 }).catch((x: unknown) => x as AmphoraError);
  assert.ok(nf instanceof AmphoraError);
  assert.equal(nf.code, Code.NotFound);
  assert.equal(nf.hintKey, "lb_not_found");
  assert.match(nf.rawMessage, new RegExp(`load balancer ${unknown} is not on this amphora`));

  // Frontends not named by listener id: waiting for the listener's id would never end.
  const lbId = randomUUID();
  const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), returnBody: "hi", members: [] }] });
  const listenerId = cfg.listeners[0]!.id;
  await client.loadBalancer.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.text.replace(`frontend ${listenerId}`, "frontend web") });
  const fp = await waitForListenersActive(client, { lbId, listenerIds: [listenerId], timeoutMs: 60_000 }).catch((x: unknown) => x as AmphoraError);
  assert.ok(fp instanceof AmphoraError);
  assert.equal(fp.code, Code.FailedPrecondition);
  assert.equal(fp.hintKey, "no_listeners_in_config");
  assert.match(fp.rawMessage, new RegExp(`listener\\(s\\) ${listenerId} not in the stored config .*its frontends are web; web is not a listener id`));
});

test("waitForListenersActive: deadline names the listener that is not ACTIVE", async (t) => {
  const { agent, client, runDir } = await setup(t);
  const lbId = randomUUID();
  const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), returnBody: "hi", members: [] }] });
  await client.loadBalancer.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.text });
  const t0 = Date.now();
  const e = await waitForListenersActive(client, { lbId, timeoutMs: 600, intervalMs: 100 }).then(
    () => assert.fail("a stopped load balancer was reported ACTIVE"),
    (x: unknown) => x as AmphoraError,
  );
  assert.ok(e instanceof AmphoraError);
  assert.equal(e.code, Code.DeadlineExceeded);
  assert.match(e.rawMessage, new RegExp(`${cfg.listeners[0]!.id}=STOPPED`));
  assert.ok(Date.now() - t0 < 5000);
  // Listener ids that never appear are named as missing.
  const other = randomUUID();
  const e2 = await waitForListenersActive(client, { listenerIds: [other], timeoutMs: 300, intervalMs: 100 }).catch((x: unknown) => x as AmphoraError);
  assert.match((e2 as AmphoraError).rawMessage, new RegExp(`${other}=MISSING`));
});

test("fanOut over three agents with one down: two results, one error naming the agent", async (t) => {
  const one = await setup(t);
  const two = await setup(t);
  const three = await setup(t);
  const downUrl = three.agent.url;
  await three.agent.cleanup();
  const clients = [one.client, two.client, three.client];
  const results = await fanOut(clients, (c, signal) => c.system.getInfo({}, { signal }), { concurrency: 2, describe: (c) => (c as AmphoraClient).baseUrl });
  assert.equal(results.length, 3);
  assert.deepEqual(results.map((r) => r.ok), [true, true, false]);
  assert.equal(results[0]!.ok && results[0]!.value.amphoraId, one.agent.config.amphoraId);
  assert.equal(results[1]!.ok && results[1]!.value.amphoraId, two.agent.config.amphoraId);
  const failed = results[2]!;
  assert.ok(!failed.ok);
  assert.equal(failed.target, three.client);
  assert.ok(failed.error instanceof AmphoraError);
  assert.equal(failed.error.category, "connection");
  assert.equal(failed.error.agent, downUrl);
  assert.match(failed.error.hint, /is the agent running/);

  // Any thrown value becomes a per-target error, and the limit holds.
  let running = 0;
  let peak = 0;
  const r2 = await fanOut([1, 2, 3, 4, 5], async (n) => {
    running++;
    peak = Math.max(peak, running);
    await new Promise((r) => setTimeout(r, 20));
    running--;
    if (n === 4) throw new Error("four is bad");
    return n * 2;
  }, { concurrency: 2 });
  assert.equal(peak, 2);
  assert.deepEqual(r2.map((r) => (r.ok ? r.value : r.error.rawMessage)), [2, 4, 6, "four is bad", 10]);
});

test("followStats: survives an agent restart on the same state dir and port, ends on abort", async (t) => {
  const port = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), "amt-state-"));
  const ac = new AbortController();
  let restarted: TestAgent | undefined;
  // Hooks run in the order they are added: this one, first, ends the
  // stream and the restarted agent, then haproxy, then removes the state dir.
  t.after(async () => {
    ac.abort();
    await restarted?.cleanup();
    await killHaproxiesUnder(stateDir);
    rmSync(stateDir, { recursive: true, force: true });
  });
  const { agent, client, runDir } = await setup(t, { stateDir, listen: `127.0.0.1:${port}` });
  const backend = await startBackend("be");
  t.after(() => backend.close());
  const lbId = randomUUID();
  const lport = await freePort();
  const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port: lport, members: [{ port: backend.port }] }] });
  await applyLoadBalancer(client, { amphoraId: agent.config.amphoraId, lbId, config: cfg.text });

  const reconnects: string[] = [];
  const seen: WatchStatsResponse[] = [];
  const stream = followStats(client, {
    lbIds: [lbId],
    intervalMs: 200,
    signal: ac.signal,
    backoff: { initialMs: 100, maxMs: 400 },
    onReconnect: ({ error }) => reconnects.push(error.codeName),
  });
  let phase: "before" | "after" = "before";
  const epochs = new Set<string>();
  let afterCount = 0;
  for await (const msg of stream) {
    seen.push(msg);
    if (msg.totalsSince) epochs.add(`${msg.totalsSince.seconds}.${msg.totalsSince.nanos}`);
    const lb = msg.loadBalancers.find((l) => l.lbId === lbId);
    if (phase === "before") {
      assert.ok(lb, "the first snapshot has the load balancer");
      assert.equal(lb.listeners[0]?.status, ListenerState.OPEN);
      phase = "after";
      // Restart the agent: same state dir (PKI, amphora id, load balancers), same port.
      await agent.cleanup();
      restarted = await startTestAgent({ stateDir, listen: `127.0.0.1:${port}` });
      continue;
    }
    // Messages the old stream had buffered before it broke do not count.
    if (lb && reconnects.length) afterCount++;
    if (afterCount >= 2) ac.abort();
  }
  assert.ok(reconnects.length >= 1, "the stream broke and was reconnected");
  assert.ok(afterCount >= 2, "snapshots kept coming after the restart");
  assert.ok(seen.some((m) => m.full), "full snapshots are marked");
  // The restarted agent's totals begin again from zero: its totals_since says so.
  assert.equal(epochs.size, 2, `one totals_since per agent run: ${[...epochs].join(", ")}`);
  const a = (await client.stats.getStats({})).totalsSince;
  const b = (await client.stats.getStats({})).totalsSince;
  assert.ok(a && b && a.seconds === b.seconds && a.nanos === b.nanos, "stable while the agent runs");
  assert.equal((await httpGet(lport)).body, "be", "haproxy kept serving across the agent restart");
});

test("followStats: an answer of the agent that would fail again ends the iteration with the error", async (t) => {
  const { client } = await setup(t);
  const it = followStats(client, { lbIds: ["not-a-uuid"], intervalMs: 200 });
  const e = await (async () => {
    for await (const _ of it) assert.fail("no message expected");
  })().then(
    () => assert.fail("expected an error"),
    (x: unknown) => x as AmphoraError,
  );
  assert.ok(e instanceof AmphoraError);
  assert.equal(e.code, Code.InvalidArgument);
});

test("followStats: the agent's keepalives are skipped unless asked for", async (t) => {
  // A short request timeout makes the agent send keepalives every ~333 ms.
  const agent = await startTestAgent({ overrides: { requestReadTimeoutS: 1 } });
  const client = createAmphoraClient({ baseUrl: agent.url, ca: agent.ca, cert: agent.cert, key: agent.key });
  t.after(async () => {
    client.close();
    await agent.cleanup();
  });
  const collect = async (keepalives: boolean) => {
    const ac = new AbortController();
    const timer = setTimeout(() => ac.abort(), 2000);
    const got: WatchStatsResponse[] = [];
    // CHANGES with nothing to change: one full message, then silence.
    for await (const m of followStats(client, { mode: WatchMode.CHANGES, intervalMs: 200, signal: ac.signal, keepalives })) got.push(m);
    clearTimeout(timer);
    return got;
  };
  const plain = await collect(false);
  assert.deepEqual(plain.map((m) => m.full), [true]);
  const all = await collect(true);
  assert.ok(all.length >= 2, `keepalives arrive (${all.length} messages)`);
  assert.equal(all[0]!.full, true);
  assert.ok(all.slice(1).every(isKeepalive));
});
