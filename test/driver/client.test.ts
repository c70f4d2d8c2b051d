// The driver's client against real agents over real mTLS: every protocol,
// one connection for all services, typed errors with the agent's details and
// hints, retries only where they are safe, deadlines.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { createServer, type Server, type Socket } from "node:net";
import { randomUUID } from "node:crypto";
import type { DescMethod } from "@bufbuild/protobuf";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { freePort } from "../support/haproxy.js";
import {
  createAmphoraClient,
  defaultDeadlineMs,
  SystemService,
  LoadBalancerService,
  StatsService,
  followStats,
  AmphoraError,
  ConnectError,
  Code,
  ErrorInfoSchema,
  type AmphoraClientOptions,
  type HintKey,
} from "../../src/driver/index.js";
import { cliHint } from "../../src/cli/hints.js";

const agents: TestAgent[] = [];
after(async () => {
  for (const a of agents) await a.cleanup();
});

async function agent(): Promise<TestAgent> {
  const a = await startTestAgent();
  agents.push(a);
  return a;
}

const opts = (a: TestAgent, extra: Partial<AmphoraClientOptions> = {}): AmphoraClientOptions => ({
  baseUrl: a.url, ca: a.ca, cert: a.cert, key: a.key, ...extra,
});

async function failure(p: Promise<unknown>): Promise<AmphoraError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AmphoraError, `expected an AmphoraError, got ${String(e)}`);
    assert.ok(e instanceof ConnectError, "an AmphoraError is a ConnectError too");
    return e;
  }
  assert.fail("expected the call to fail");
}

test("every protocol reaches every service over one connection", async () => {
  const a = await agent();
  let connections = 0;
  a.server.server.on("secureConnection", () => connections++);
  for (const protocol of ["connect", "grpc", "grpc-web"] as const) {
    const before = connections;
    const c = createAmphoraClient(opts(a, { protocol }));
    try {
      const info = await c.system.getInfo({});
      assert.equal(info.amphoraId, a.config.amphoraId);
      assert.equal((await c.system.getApiVersion({})).apiVersion, "1.0");
      assert.equal((await c.network.getInterface({ ip: "127.0.0.1" })).interface, "lo");
      assert.ok(Array.isArray((await c.loadBalancer.listListeners({})).listeners));
      assert.ok(Array.isArray((await c.stats.getStats({})).loadBalancers));
      // A server stream over the same connection, ended by breaking out (followStats aborts it).
      for await (const msg of followStats(c, { intervalMs: 100 })) {
        assert.ok(msg.full);
        assert.equal(a.ctx.monitoring.hub.subscriberCount, 1);
        break;
      }
      // `break` alone does not cancel a connect-es stream; followStats does.
      const end = Date.now() + 5000;
      while (a.ctx.monitoring.hub.subscriberCount !== 0) {
        assert.ok(Date.now() < end, `${protocol}: the agent still streams after break`);
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(connections - before, 1, `${protocol}: all calls share one TLS connection`);
    } finally {
      c.close();
    }
  }
  // Connect with JSON on the wire works the same.
  const j = createAmphoraClient(opts(a, { json: true }));
  assert.equal((await j.system.getInfo({})).amphoraId, a.config.amphoraId);
  j.close();
});

test("errors of the agent carry the code, ErrorInfo details and reason, agent and procedure", async () => {
  const a = await agent();
  const c = createAmphoraClient(opts(a));
  try {
    const nf = await failure(c.network.getInterface({ ip: "203.0.113.77" }));
    assert.equal(nf.code, Code.NotFound);
    assert.equal(nf.codeName, "not_found");
    assert.equal(nf.category, "server");
    assert.equal(nf.errorDetails, "203.0.113.77");
    assert.equal(nf.findDetails(ErrorInfoSchema)[0]?.details, "203.0.113.77", "findDetails still works");
    assert.equal(nf.agent, a.url);
    assert.equal(nf.procedure, "amphora.v1.NetworkService/GetInterface");
    assert.match(nf.hint, /nothing with that id or name on this amphora/);

    const lbId = randomUUID();
    const missing = await failure(c.loadBalancer.getConfig({ lbId }));
    assert.equal(missing.code, Code.NotFound);
    assert.ok(missing.reason, "the agent's machine-readable reason is kept");

    const bad = await failure(c.loadBalancer.getConfig({ lbId: "not-a-uuid" }));
    assert.equal(bad.code, Code.InvalidArgument);
    assert.match(bad.rawMessage, /lb_id/);

    const json = nf.toJSON();
    assert.equal(json.code, "not_found");
    assert.equal(json.details, "203.0.113.77");
  } finally {
    c.close();
  }
});

test("connection refused: retried only for side-effect-free calls, then a hint naming the URL", async () => {
  const port = await freePort();
  const baseUrl = `https://127.0.0.1:${port}`;
  const a = await agent();
  const retries: string[] = [];
  const c = createAmphoraClient({ ...opts(a), baseUrl, retry: { maxAttempts: 3, initialMs: 10, onRetry: (r) => retries.push(r.procedure) } });
  try {
    const e = await failure(c.system.getInfo({}));
    assert.equal(e.code, Code.Unavailable);
    assert.equal(e.category, "connection");
    assert.equal(e.hint, `connection refused: is the agent running at ${baseUrl}?`);
    assert.deepEqual(retries, ["amphora.v1.SystemService/GetInfo", "amphora.v1.SystemService/GetInfo"], "NO_SIDE_EFFECTS: 2 retries after the first attempt");

    retries.length = 0;
    const put = await failure(c.loadBalancer.putConfig({ amphoraId: randomUUID(), lbId: randomUUID(), config: "global\n" }));
    assert.equal(put.category, "connection");
    assert.deepEqual(retries, [], "IDEMPOTENT but with side effects: never retried");
    await failure(c.loadBalancer.controlLoadBalancer({ lbId: randomUUID(), action: 1 }));
    assert.deepEqual(retries, [], "no idempotency level: never retried");
  } finally {
    c.close();
  }
});

test("a retried call succeeds once the agent is up", async () => {
  const port = await freePort();
  const c0 = await agent();
  const c = createAmphoraClient({ ...opts(c0), baseUrl: `https://127.0.0.1:${port}`, retry: { maxAttempts: 20, initialMs: 50, maxMs: 200 } });
  let late: TestAgent | undefined;
  try {
    // The agent starts while the call is already waiting between retries.
    const call = c.system.getInfo({});
    // On c0's state dir (its PKI and amphora id), which one agent holds at a time.
    await c0.stop(500);
    late = await startTestAgent({ stateDir: c0.stateDir, listen: `127.0.0.1:${port}` });
    const info = await call;
    assert.equal(info.amphoraId, c0.config.amphoraId);
  } finally {
    c.close();
    await late?.stop(500);
  }
});

test("TLS problems say which credential to check: a structured hint key, words without any program's flags (the CLI adds its own)", async () => {
  const a = await agent();
  const b = await agent();
  const cases: [string, Partial<AmphoraClientOptions>, HintKey, RegExp, RegExp][] = [
    ["client certificate from another CA", { cert: b.cert, key: b.key }, "client_cert_rejected", /client certificate rejected by the agent: check the CA and the client certificate/, /check --ca\/--cert/],
    ["server not signed by --ca", { ca: b.ca }, "server_cert_untrusted", /server certificate is not signed by the CA given/, /not signed by --ca/],
    ["host not in the certificate", { serverName: "lb.example.invalid" }, "server_name_mismatch", /check against the amphora id \(serverName\)/, /pass --server-name <amphora id>/],
    ["key does not match the certificate", { key: b.key }, "key_cert_mismatch", /the private key does not belong to the client certificate/, /--key is not the private key of --cert/],
  ];
  for (const [name, extra, key, words, cliWords] of cases) {
    const c = createAmphoraClient(opts(a, { retry: false, ...extra }));
    try {
      const e = await failure(c.system.getInfo({}));
      assert.equal(e.category, "tls", `${name}: category (${e.rawMessage})`);
      assert.equal(e.hintKey, key, `${name}: hint key`);
      assert.match(e.hint, words, `${name}: hint`);
      assert.doesNotMatch(e.hint, /--[a-z]/, `${name}: a library user has no CLI flags`);
      assert.equal(e.toJSON().hint_key, key);
      assert.match(cliHint(e), cliWords, `${name}: the CLI's words`);
    } finally {
      c.close();
    }
  }
  const none = createAmphoraClient(opts(a, { retry: false, cert: "", key: "" }));
  try {
    assert.match((await failure(none.system.getInfo({}))).hint, /client certificate rejected by the agent|check the CA/, "no client certificate");
  } finally {
    none.close();
  }
  // Rejections look different from run to run (FIN or RST, depending on
  // whether our request was still unread): every one is recognised, and none
  // is retried although GetInfo is side-effect free.
  const retries: string[] = [];
  for (let i = 0; i < 15; i++) {
    const c = createAmphoraClient(opts(a, { cert: b.cert, key: b.key, retry: { initialMs: 10, onRetry: (r) => retries.push(r.procedure) } }));
    try {
      const e = await failure(i % 2 ? c.system.getInfo({}) : c.loadBalancer.listListeners({}));
      assert.equal(e.code, Code.Unauthenticated, `attempt ${i}: ${e.rawMessage}`);
      assert.match(e.hint, /client certificate rejected/);
    } finally {
      c.close();
    }
  }
  assert.deepEqual(retries, []);

  // The right name is accepted: the dev certificate names the amphora id.
  const ok = createAmphoraClient(opts(a, { serverName: a.config.amphoraId }));
  assert.equal((await ok.system.getInfo({})).amphoraId, a.config.amphoraId);
  ok.close();
});

test("a call has a deadline: a peer that never answers gives deadline_exceeded with a hint", async () => {
  // Accepts TCP and says nothing: the TLS handshake never completes.
  const sockets: Socket[] = [];
  const silent: Server = createServer((s) => sockets.push(s));
  await new Promise<void>((r) => silent.listen(0, "127.0.0.1", () => r()));
  const port = (silent.address() as { port: number }).port;
  const a = await agent();
  const c = createAmphoraClient({ ...opts(a), baseUrl: `https://127.0.0.1:${port}`, timeoutMs: 300 });
  try {
    const t0 = Date.now();
    const e = await failure(c.system.getInfo({}));
    assert.equal(e.code, Code.DeadlineExceeded);
    assert.equal(e.category, "timeout");
    assert.match(e.hint, /within 300 ms/);
    assert.ok(Date.now() - t0 < 5000, "the deadline ended the call");
    // A per-call deadline overrides the client's.
    const e2 = await failure(c.system.getInfo({}, { timeoutMs: 100 }));
    assert.equal(e2.code, Code.DeadlineExceeded);
  } finally {
    c.close();
    for (const s of sockets) s.destroy();
    await new Promise<void>((r) => silent.close(() => r()));
  }
});

test("default deadlines fit the method", () => {
  const m = (svc: { methods: DescMethod[] }, name: string) => svc.methods.find((x) => x.name === name)!;
  assert.equal(defaultDeadlineMs(m(SystemService, "GetInfo")), 10_000);
  assert.equal(defaultDeadlineMs(m(LoadBalancerService, "PutConfig")), 30_000);
  assert.equal(defaultDeadlineMs(m(LoadBalancerService, "ControlLoadBalancer")), 60_000);
  assert.equal(defaultDeadlineMs(m(LoadBalancerService, "DeleteLoadBalancer")), 60_000);
  assert.equal(defaultDeadlineMs(m(StatsService, "WatchStats")), 0, "streams run until cancelled");
});

test("bad options fail at once with a clear message", () => {
  assert.throws(() => createAmphoraClient({ baseUrl: "not a url", ca: "", cert: "", key: "" }), /not a URL/);
  assert.throws(() => createAmphoraClient({ baseUrl: "http://127.0.0.1:9443", ca: "", cert: "", key: "" }), /only speaks https/);
  assert.throws(
    () => createAmphoraClient({ baseUrl: "https://127.0.0.1:9443", ca: "", cert: "", key: "", protocol: "soap" as never }),
    /unknown protocol/,
  );
});
