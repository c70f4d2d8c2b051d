// GET /metrics on the agent port: Prometheus text, behind the same mutual
// TLS, with RPC counters and per-object gauges from the shared poller; two
// agents in one process keep separate registries.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { request } from "node:https";
import { StatsService, WatchMode } from "../../src/gen/amphora/v1/stats_pb.js";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { testEnv, until } from "../stats/fixture.js";

function get(agent: TestAgent, path: string, withCert = true, method = "GET"): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const u = new URL(path, agent.url);
    const req = request(
      { host: u.hostname, port: u.port, path: u.pathname, method, ca: agent.ca, ...(withCert ? { cert: agent.cert, key: agent.key } : {}), agent: false },
      (res) => {
        let body = "";
        res.on("data", (c) => (body += c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, type: String(res.headers["content-type"]), body }));
      },
    );
    req.on("error", reject);
    req.end();
  });
}

function value(body: string, line: string): number | undefined {
  const l = body.split("\n").find((x) => x.startsWith(line + " "));
  return l ? Number(l.slice(line.length + 1)) : undefined;
}

test("/metrics: RPC counters, subscribers, polls and per-object gauges; mTLS required", async () => {
  const env = await testEnv();
  after(() => env.cleanup());
  const lb = await env.startLb({ members: 2 });
  env.catalog.put(lb.ref());
  const agent = await startTestAgent({ catalog: env.catalog });
  after(() => agent.cleanup());
  const other = await startTestAgent();
  after(() => other.cleanup());
  await lb.traffic(3);
  await agent.client(StatsService).getStats({});
  await agent.client(SystemService).getApiVersion({});
  const ac = new AbortController();
  const stream = agent.client(StatsService).watchStats({ intervalMs: 100, mode: WatchMode.SNAPSHOTS }, { signal: ac.signal });
  const it = stream[Symbol.asyncIterator]();
  await it.next();

  // A REST request refused before it became a call is counted on its own.
  assert.equal((await get(agent, "/1.0/info", true, "POST")).status, 405);

  const m = await get(agent, "/metrics");
  assert.equal(m.status, 200);
  assert.equal(value(m.body, 'amphora_rest_rejected_total{status="405"}'), 1);
  assert.match(m.type, /^text\/plain; version=0\.0\.4/);
  assert.equal(value(m.body, 'amphora_rpc_total{method="amphora.v1.StatsService/GetStats",code="OK"}'), 1);
  assert.equal(value(m.body, 'amphora_rpc_total{method="amphora.v1.SystemService/GetApiVersion",code="OK"}'), 1);
  assert.match(m.body, /amphora_rpc_duration_seconds_bucket\{le="0.1",method="amphora.v1.StatsService\/GetStats"\}/);
  assert.equal(value(m.body, "amphora_stats_subscribers"), 1);
  assert.equal(value(m.body, "amphora_stats_poll_groups"), 1);
  assert.ok(value(m.body, "amphora_stats_polls_total")! >= 2);
  assert.equal(value(m.body, `amphora_listener_sessions{lb_id="${lb.lbId}",listener_id="${lb.listenerId}"}`), 3);
  assert.equal(value(m.body, `amphora_listener_open{lb_id="${lb.lbId}",listener_id="${lb.listenerId}"}`), 1);
  assert.equal(value(m.body, `amphora_lb_running{lb_id="${lb.lbId}"}`), 1);
  const [poolId] = lb.poolName.split(":");
  assert.equal(value(m.body, `amphora_member_status{lb_id="${lb.lbId}",pool_id="${poolId}",member_id="${lb.memberIds[0]}",status="NO_CHECK"}`), 1);
  ac.abort();
  await it.return?.();
  await until("stream gone", () => agent.ctx.monitoring.hub.subscriberCount === 0 || undefined);

  // The other agent in the same process counts only its own calls.
  const o = await get(other, "/metrics");
  assert.equal(value(o.body, 'amphora_rpc_total{method="amphora.v1.StatsService/GetStats",code="OK"}'), undefined);
  assert.doesNotMatch(o.body, new RegExp(lb.lbId));

  // Other paths still reach the next fallback (REST / 404 JSON).
  const nf = await get(agent, "/metrics/nope");
  assert.notEqual(nf.status, 200);
  // No client certificate: no TLS session, no metrics.
  await assert.rejects(get(agent, "/metrics", false));
});

test("/metrics counts config validations (PutConfig outcomes) and reloads from the agent's own load balancers", async () => {
  const { LoadBalancerService, LoadBalancerAction } = await import("../../src/gen/amphora/v1/load_balancer_pb.js");
  const { freePort, killHaproxiesUnder, octaviaConfig } = await import("../support/haproxy.js");
  const { mkdtempSync, rmSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const { randomUUID } = await import("node:crypto");
  const runDir = mkdtempSync(join(tmpdir(), "amt-mt-"));
  const agent = await startTestAgent();
  after(async () => {
    // The agent first (it would restart a haproxy that dies while it runs), then its haproxy.
    await agent.cleanup();
    await killHaproxiesUnder(agent.stateDir);
    rmSync(runDir, { recursive: true, force: true });
  });
  const lbs = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const amphoraId = agent.config.amphoraId;
  await assert.rejects(lbs.putConfig({ amphoraId, lbId, config: "frontend x\n  bogus_keyword 1\n" }));
  const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), members: [], returnBody: "hi" }] });
  await lbs.putConfig({ amphoraId, lbId, config: cfg.text });
  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  await lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD });
  // A reload haproxy refuses: the second listener's port is held by someone else.
  const { createServer } = await import("node:net");
  const squatter = createServer().listen(0, "127.0.0.1");
  await new Promise((r) => squatter.once("listening", r));
  after(() => new Promise<void>((r) => squatter.close(() => r())));
  const taken = (squatter.address() as { port: number }).port;
  const bad = octaviaConfig({ lbId, runDir, listeners: [cfg.listeners[0]!, { port: taken, members: [], returnBody: "x" }] });
  await lbs.putConfig({ amphoraId, lbId, config: bad.text });
  await assert.rejects(lbs.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD }));
  const m = (await get(agent, "/metrics")).body;
  assert.equal(value(m, 'amphora_haproxy_config_validations_total{outcome="invalid"}'), 1);
  assert.equal(value(m, 'amphora_haproxy_config_validations_total{outcome="valid"}'), 2);
  assert.equal(value(m, 'amphora_haproxy_reloads_total{outcome="ok"}'), 1);
  assert.equal(value(m, 'amphora_haproxy_reloads_total{outcome="failed"}'), 1);
  assert.equal(value(m, 'amphora_lb_events_total{type="started"}'), 1);
  assert.equal(value(m, `amphora_lb_running{lb_id="${lbId}"}`), 1);
});
