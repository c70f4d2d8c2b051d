// Benchmark (not a test): how much the agent adds on top of haproxy's own
// floor when a controller changes a load balancer.
//   (a) floor, measured directly: `haproxy -c` of the new config, then
//       `reload` on the master CLI, until the new config is served;
//   (b) the agent: PutConfig + ControlLoadBalancer(RELOAD) through the
//       generated client over mutual TLS, until the new config is served.
// "Served" = a fresh HTTP connection gets the new body. Target: b/a <= 1.2.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { startTestAgent } from "../test/support/agent.js";
import { freePort, octaviaConfig, waitForBody, killHaproxiesUnder } from "../test/support/haproxy.js";
import { LoadBalancerService, LoadBalancerAction } from "../src/gen/amphora/v1/load_balancer_pb.js";
import { run } from "../src/system/exec.js";
import { masterCommand } from "../src/haproxy/master-cli.js";
import { startMaster, stopMaster } from "../src/haproxy/master.js";
import { userGroupConfig } from "../src/haproxy/user-group.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 25);
const HAPROXY = "/usr/sbin/haproxy";

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const fmt = (xs: number[]) => `median ${quantile(xs, 0.5).toFixed(1)} ms  p95 ${quantile(xs, 0.95).toFixed(1)} ms`;

async function floor(dir: string): Promise<{ check: number[]; reload: number[]; total: number[] }> {
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
  const check: number[] = [];
  const reload: number[] = [];
  const total: number[] = [];
  try {
    for (let i = 1; i <= ROUNDS; i++) {
      const body = `r${i}`;
      const t0 = performance.now();
      writeFileSync(cfgFile, cfg(body));
      const c = await run(HAPROXY, ["-c", "-f", cfgFile, "-f", ugFile, "-L", "bench"]);
      if (c.exitCode !== 0) throw new Error(c.stderr);
      const t1 = performance.now();
      await masterCommand(o.masterSocket, "reload");
      await waitForBody(port, body, 10_000, 1);
      const t2 = performance.now();
      check.push(t1 - t0);
      reload.push(t2 - t1);
      total.push(t2 - t0);
    }
  } finally {
    await stopMaster(o, 1000);
  }
  return { check, reload, total };
}

async function viaAgent(runDir: string): Promise<number[]> {
  const agent = await startTestAgent();
  try {
    const lb = agent.client(LoadBalancerService);
    const lbId = randomUUID();
    const port = await freePort();
    const cfg = (body: string) => octaviaConfig({ lbId, runDir, listeners: [{ id: lbId, port, members: [], returnBody: body }] }).text;
    await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg("r0") });
    await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
    await waitForBody(port, "r0");
    const out: number[] = [];
    for (let i = 1; i <= ROUNDS; i++) {
      const body = `r${i}`;
      const t0 = performance.now();
      await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg(body) });
      await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD });
      await waitForBody(port, body, 10_000, 1);
      out.push(performance.now() - t0);
    }
    return out;
  } finally {
    await killHaproxiesUnder(agent.stateDir);
    await agent.cleanup();
  }
}

export async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "amt-bench-"));
  try {
    // Interleave the two so machine noise (2 shared cores) hits both alike.
    const a = await floor(dir);
    const b = await viaAgent(dir);
    const a2 = await floor(dir);
    const check = [...a.check, ...a2.check];
    const reload = [...a.reload, ...a2.reload];
    const total = [...a.total, ...a2.total];
    console.log(`rounds: ${ROUNDS} agent, ${2 * ROUNDS} direct (before and after the agent run)`);
    console.log(`(a) haproxy -c                         ${fmt(check)}`);
    console.log(`(a) reload until new config served     ${fmt(reload)}`);
    console.log(`(a) floor = -c + reload until served   ${fmt(total)}`);
    console.log(`(b) agent PutConfig+RELOAD over mTLS   ${fmt(b)}`);
    console.log(`b/a  median ${(quantile(b, 0.5) / quantile(total, 0.5)).toFixed(2)}  p95 ${(quantile(b, 0.95) / quantile(total, 0.95)).toFixed(2)}  (target <= 1.2)`);
  } finally {
    await killHaproxiesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
