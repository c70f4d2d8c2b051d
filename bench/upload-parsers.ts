// How long one hostile upload can block the agent's event loop (during which
// no other call, not even GET /1.0/info, is answered). Sends every pattern of
// test/support/adversarial.ts at each body route's size limit through REST
// (and the text routes once more through Connect binary), to a real dev agent
// in this process, and prints the worst event-loop block per route.
// Target: under 100 ms for every route (the freeze test asserts it).
//   npm run bench -- upload-parsers
//   BENCH_ROUTES=Vrrp,Certificate BENCH_PATTERNS=BEGIN npm run bench -- upload-parsers
import { startTestAgent } from "../test/support/agent.js";
import { RestClient } from "../test/transport/rest/https-client.js";
import { ADVERSARIAL_IDS, BODY_ROUTES, bodiesFor, eventLoopWatch } from "../test/support/adversarial.js";
import { CertificateService } from "../src/gen/amphora/v1/certificate_pb.js";
import { KeepalivedService } from "../src/gen/amphora/v1/keepalived_pb.js";
import { SystemService } from "../src/gen/amphora/v1/system_pb.js";
import { LoadBalancerService } from "../src/gen/amphora/v1/load_balancer_pb.js";

const pick = (env: string | undefined) => (env ? env.split(",") : undefined);

export async function main(): Promise<void> {
  const routes = pick(process.env.BENCH_ROUTES);
  const patterns = pick(process.env.BENCH_PATTERNS);
  const agent = await startTestAgent();
  const rest = new RestClient(agent.url, agent);
  const watch = eventLoopWatch();
  let worstOverall = { ms: 0, where: "" };
  try {
    for (const r of BODY_ROUTES) {
      if (routes && !routes.some((s) => r.name.includes(s))) continue;
      let worst = { ms: 0, pattern: "", status: 0, totalMs: 0 };
      for (const [name, body] of bodiesFor(r)) {
        if (patterns && !patterns.some((s) => name.includes(s))) continue;
        watch.reset();
        const t = performance.now();
        const res = await rest.request(r.method, r.path, { body, headers: r.body === "text" ? { "content-type": "text/plain" } : { "content-type": "application/json" } });
        const ms = watch.maxMs();
        const total = performance.now() - t;
        if (process.env.BENCH_VERBOSE) console.log(`  ${r.name} / ${name}: block ${ms.toFixed(0)} ms, total ${total.toFixed(0)} ms, ${res.status}`);
        if (ms > worst.ms) worst = { ms, pattern: name, status: res.status, totalMs: total };
      }
      console.log(`REST ${r.method} ${r.name.padEnd(24)} limit ${String(r.limit).padStart(8)} B  worst block ${worst.ms.toFixed(0).padStart(6)} ms  (${worst.pattern}, ${worst.status}, call ${worst.totalMs.toFixed(0)} ms)`);
      if (worst.ms > worstOverall.ms) worstOverall = { ms: worst.ms, where: `REST ${r.name} / ${worst.pattern}` };
    }
    // The same parsers through the RPC front door (Connect binary).
    const rpc: [string, number, (body: string) => Promise<unknown>][] = [
      ["PutCertificate", 1 << 20, (pem) => agent.client(CertificateService).putCertificate({ lbId: ADVERSARIAL_IDS.lbId, filename: "server.pem", pem })],
      ["PutVrrpConfig", 1 << 20, (config) => agent.client(KeepalivedService).putVrrpConfig({ config })],
      ["PutUdpListenerConfig", 1 << 20, (config) => agent.client(KeepalivedService).putUdpListenerConfig({ amphoraId: ADVERSARIAL_IDS.amphoraId, listenerId: ADVERSARIAL_IDS.listenerId, config })],
      ["RotateAgentCertificate", 256 << 10, (pem) => agent.client(SystemService).rotateAgentCertificate({ pem })],
      ["UpdateAgentConfig", 64 << 10, (config) => agent.client(SystemService).updateAgentConfig({ config })],
      ["PutConfig (haproxy)", 8 << 20, (config) => agent.client(LoadBalancerService).putConfig({ amphoraId: ADVERSARIAL_IDS.amphoraId, lbId: ADVERSARIAL_IDS.lbId, config })],
    ];
    for (const [name, limit, call] of rpc) {
      if (routes && !routes.some((s) => name.includes(s))) continue;
      let worst = { ms: 0, pattern: "" };
      for (const [p, body] of bodiesFor({ name, method: "PUT", path: "", limit, body: "text" })) {
        if (patterns && !patterns.some((s) => p.includes(s))) continue;
        watch.reset();
        await call(body).catch(() => undefined);
        const ms = watch.maxMs();
        if (ms > worst.ms) worst = { ms, pattern: p };
      }
      console.log(`RPC  ${name.padEnd(29)} limit ${String(limit).padStart(8)} B  worst block ${worst.ms.toFixed(0).padStart(6)} ms  (${worst.pattern})`);
      if (worst.ms > worstOverall.ms) worstOverall = { ms: worst.ms, where: `RPC ${name} / ${worst.pattern}` };
    }
    console.log(`worst event-loop block across all routes: ${worstOverall.ms.toFixed(0)} ms (${worstOverall.where}); target < 100 ms`);
  } finally {
    watch.stop();
    rest.close();
    await agent.cleanup();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
