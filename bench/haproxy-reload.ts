// Benchmark (not a test): how much the agent adds on top of haproxy's own
// floor when a controller changes a load balancer.
//   (a) floor, measured directly: `haproxy -c` of the new config, then
//       `reload` on the master CLI, until the new config is served;
//   (b) the agent: PutConfig + ControlLoadBalancer(RELOAD) through the
//       generated client over mutual TLS, until the new config is served.
// "Served" = a fresh HTTP connection gets the new body. Target: b/a <= 1.2.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir, loadavg, cpus } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { startTestAgent } from "../test/support/agent.js";
import { freePort, octaviaConfig, waitForBody, killHaproxiesUnder } from "../test/support/haproxy.js";
import { LoadBalancerService, LoadBalancerAction } from "../src/gen/amphora/v1/load_balancer_pb.js";
import { run } from "../src/system/exec.js";
import { masterCommand } from "../src/haproxy/master-cli.js";
import { startMaster, stopMaster } from "../src/haproxy/master.js";
import { parseShowProc } from "../src/haproxy/show-proc.js";
import { userGroupConfig } from "../src/haproxy/user-group.js";
import { setTimeout as sleep } from "node:timers/promises";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 25);
const HAPROXY = "/usr/sbin/haproxy";

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const fmt = (xs: number[]) => `median ${quantile(xs, 0.5).toFixed(1)} ms  p95 ${quantile(xs, 0.95).toFixed(1)} ms`;

/** Direct haproxy: the floor. One round = write, `haproxy -c`, `reload`, poll until served. */
async function directHaproxy(dir: string) {
  const lbId = randomUUID();
  const port = await freePort();
  const cfgFile = join(dir, "haproxy.cfg");
  const ugFile = join(dir, "user-group.cfg");
  writeFileSync(ugFile, (await userGroupConfig()).text);
  const cfg = (body: string) => octaviaConfig({ lbId, runDir: dir, listeners: [{ id: lbId, port, members: [], returnBody: body }] }).text;
  writeFileSync(cfgFile, cfg("r0"));
  const o = { haproxyCmd: HAPROXY, netns: "", peer: "bench", config: cfgFile, userGroupFile: ugFile, pidFile: join(dir, "haproxy.pid"), masterSocket: join(dir, "master.sock") };
  await startMaster(o);
  await waitForBody(port, "r0");
  return {
    async round(body: string): Promise<{ check: number; reload: number; total: number; confirmed: number }> {
      // Not timed: the master CLI is back after the previous reload.
      let reloads = -1;
      while (reloads < 0) {
        reloads = await masterCommand(o.masterSocket, "show proc").then((t) => parseShowProc(t).master.reloads, () => -1);
        if (reloads < 0) await sleep(1);
      }
      const t0 = performance.now();
      writeFileSync(cfgFile, cfg(body));
      const c = await run(HAPROXY, ["-c", "-f", cfgFile, "-f", ugFile, "-L", "bench"]);
      if (c.exitCode !== 0) throw new Error(c.stderr);
      const t1 = performance.now();
      await masterCommand(o.masterSocket, "reload");
      await waitForBody(port, body, 10_000, 1);
      const t2 = performance.now();
      // What a verified reload needs on top: the master's own confirmation.
      for (;;) {
        const r = await masterCommand(o.masterSocket, "show proc").then((t) => parseShowProc(t).master.reloads, () => -1);
        if (r > reloads) break;
        await sleep(1);
      }
      const t3 = performance.now();
      return { check: t1 - t0, reload: t2 - t1, total: t2 - t0, confirmed: t3 - t0 };
    },
    stop: () => stopMaster(o, 1000),
  };
}

/** The agent: one round = PutConfig + RELOAD through the generated client over mTLS, poll until served. */
async function viaAgent(runDir: string) {
  const agent = await startTestAgent();
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const port = await freePort();
  const cfg = (body: string) => octaviaConfig({ lbId, runDir, listeners: [{ id: lbId, port, members: [], returnBody: body }] }).text;
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg("r0") });
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  await waitForBody(port, "r0");
  return {
    async round(body: string): Promise<number> {
      const t0 = performance.now();
      await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg(body) });
      await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD });
      await waitForBody(port, body, 10_000, 1);
      return performance.now() - t0;
    },
    async stop() {
      await killHaproxiesUnder(agent.stateDir);
      await agent.cleanup();
    },
  };
}

export async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "amt-bench-"));
  const direct = await directHaproxy(dir);
  const agent = await viaAgent(dir);
  try {
    const check: number[] = [];
    const reload: number[] = [];
    const total: number[] = [];
    const confirmed: number[] = [];
    const b: number[] = [];
    const ratio: number[] = [];
    // Alternate a and b round by round so the load of a shared machine hits both alike.
    for (let i = 1; i <= ROUNDS; i++) {
      const a = await direct.round(`r${i}`);
      const bi = await agent.round(`r${i}`);
      check.push(a.check);
      reload.push(a.reload);
      total.push(a.total);
      confirmed.push(a.confirmed);
      b.push(bi);
      ratio.push(bi / a.total);
    }
    console.log(`rounds: ${ROUNDS}, alternating direct and agent`);
    console.log(`(a) haproxy -c                         ${fmt(check)}`);
    console.log(`(a) reload until new config served     ${fmt(reload)}`);
    console.log(`(a) floor = -c + reload until served   ${fmt(total)}`);
    console.log(`(a') -c + reload until show proc confirms ${fmt(confirmed)}  (the master CLI answers again only after the new worker serves)`);
    console.log(`(b) agent PutConfig+RELOAD over mTLS   ${fmt(b)}`);
    console.log(`b/a  ratio of medians ${(quantile(b, 0.5) / quantile(total, 0.5)).toFixed(2)}  ratio of p95s ${(quantile(b, 0.95) / quantile(total, 0.95)).toFixed(2)}  per-round ratio median ${quantile(ratio, 0.5).toFixed(2)} p95 ${quantile(ratio, 0.95).toFixed(2)}  (target <= 1.2)`);
    console.log(`b/a' ratio of medians ${(quantile(b, 0.5) / quantile(confirmed, 0.5)).toFixed(2)}  ratio of p95s ${(quantile(b, 0.95) / quantile(confirmed, 0.95)).toFixed(2)}`);
    console.log(`load average during the run: ${loadavg().map((x) => x.toFixed(2)).join(" ")} on ${cpus().length} cores`);
  } finally {
    await direct.stop().catch(() => {});
    await agent.stop();
    await killHaproxiesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
