// Benchmark (not a test): a member weight change as Octavia's controller
// sends it — PutConfig of the full config, then ControlLoadBalancer(RELOAD)
// through the generated client over mutual TLS — applied
//   (r) at runtime on the running worker (issue 13), or
//   (R) by a reload (runtime apply switched off),
// alternating round by round on the same load balancer, so a shared
// machine's load hits both alike. Each round ends when the RPC answers
// (both paths verify before answering). Target: r/R <= 1/5.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir, loadavg, cpus } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { startTestAgent } from "../test/support/agent.js";
import { freePort, killHaproxiesUnder, startBackend } from "../test/support/haproxy.js";
import { LoadBalancerService, LoadBalancerAction } from "../src/gen/amphora/v1/load_balancer_pb.js";
import { ApplyMethod } from "../src/gen/amphora/v1/events_pb.js";
import { masterCommand } from "../src/haproxy/master-cli.js";
import { parseShowProc } from "../src/haproxy/show-proc.js";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 20);
const MEMBERS = Number(process.env.BENCH_MEMBERS ?? 10);

function quantile(xs: number[], q: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]!;
}
const fmt = (xs: number[]) => `median ${quantile(xs, 0.5).toFixed(1)} ms  p95 ${quantile(xs, 0.95).toFixed(1)} ms`;

function config(lbId: string, port: number, backendPort: number, weight0: number): string {
  const pool = `pool-${lbId}:${lbId}`;
  return [
    `# Configuration for loadbalancer ${lbId}`,
    "global", "    daemon", "    maxconn 4096", "    noreuseport", "    hard-stop-after 5s", "",
    "defaults", "    retries 3", "    option redispatch", "    timeout connect 5s", "    timeout client 50s", "    timeout server 50s", "",
    `frontend ${lbId}`, "    maxconn 4096", `    bind 127.0.0.1:${port}`, "    mode http", "    option idle-close-on-response", `    default_backend ${pool}`, "",
    `backend ${pool}`, "    mode http", "    balance roundrobin", "    fullconn 4096",
    ...Array.from({ length: MEMBERS }, (_, i) => `    server member-${i} 127.0.0.1:${backendPort} weight ${i === 0 ? weight0 : 1} check inter 5s fall 3 rise 2`),
    "",
  ].join("\n");
}

export async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), "amt-bench-mc-"));
  const backend = await startBackend("m");
  const agent = await startTestAgent();
  try {
    const lb = agent.client(LoadBalancerService);
    const lbId = randomUUID();
    const port = await freePort();
    const sock = join(agent.stateDir, "lb", lbId, "master.sock");
    await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: config(lbId, port, backend.port, 1) });
    await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
    const proc = async () => {
      for (;;) {
        const p = await masterCommand(sock, "show proc").then(parseShowProc, () => undefined);
        if (p) return p;
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    const runtime: number[] = [];
    const reload: number[] = [];
    const ratio: number[] = [];
    const [putR, putX, ctlR, ctlX] = [[], [], [], []] as number[][];
    const newWorkers = { runtime: 0, reload: 0 };
    const maxWorkers = { runtime: 0, reload: 0 };
    let weight = 1;
    const round = async (path: "runtime" | "reload") => {
      agent.ctx.lbs.setRuntimeApply({ enabled: path === "runtime" });
      const before = await proc();
      weight = (weight % 9) + 1;
      const t0 = performance.now();
      await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: config(lbId, port, backend.port, weight) });
      const t1 = performance.now();
      const r = await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD });
      const ms = performance.now() - t0;
      (path === "runtime" ? putR : putX).push(t1 - t0);
      (path === "runtime" ? ctlR : ctlX).push(ms - (t1 - t0));
      const want = path === "runtime" ? ApplyMethod.RUNTIME : ApplyMethod.RELOAD;
      if (r.method !== want) throw new Error(`${path} round answered method ${r.method}: ${r.reason}`);
      const after = await proc();
      newWorkers[path] += after.master.reloads - before.master.reloads;
      maxWorkers[path] = Math.max(maxWorkers[path], after.workers.length);
      // Not timed: let an old worker of the reload path leave before the next round.
      while ((await proc()).workers.length > 1) await new Promise((r) => setTimeout(r, 5));
      return ms;
    };
    for (let i = 0; i < ROUNDS; i++) {
      const a = await round("runtime");
      const b = await round("reload");
      runtime.push(a);
      reload.push(b);
      ratio.push(a / b);
    }
    console.log(`rounds: ${ROUNDS} per path, alternating; ${MEMBERS} members with health checks; weight of one member changed per round`);
    console.log(`(r) PutConfig + RELOAD applied at runtime   ${fmt(runtime)}   new workers ${newWorkers.runtime}, at most ${maxWorkers.runtime} worker(s) right after`);
    console.log(`(R) PutConfig + RELOAD by a reload           ${fmt(reload)}   new workers ${newWorkers.reload}, at most ${maxWorkers.reload} worker(s) right after`);
    console.log(`    of which PutConfig (haproxy -c unless a member change of the stored config): runtime rounds ${fmt(putR)}, reload rounds ${fmt(putX)}`);
    console.log(`    of which RELOAD: runtime ${fmt(ctlR)}, reload ${fmt(ctlX)}`);
    console.log(`r/R per round: median ${quantile(ratio, 0.5).toFixed(3)}  p95 ${quantile(ratio, 0.95).toFixed(3)}  (target <= 0.2); median latencies ${(quantile(runtime, 0.5) / quantile(reload, 0.5)).toFixed(3)}`);
    console.log(`load average ${loadavg().map((x) => x.toFixed(2)).join(" ")} on ${cpus().length} cores`);
  } finally {
    await killHaproxiesUnder(agent.stateDir);
    await agent.cleanup();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
