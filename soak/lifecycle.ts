// Soak (issue 14): 8 clients race uploads (valid and invalid), start, stop,
// reload and delete on 3 load balancers of one agent for SOAK_LIFECYCLE_S
// seconds (default 600), with kill -9 of a random haproxy master every ~5 s;
// every 10 s, after a 3 s quiet period, the invariants are checked from
// /proc (test/support/lifecycle-stress.ts). Fails on any violation or any
// master left after delete-all; prints operations, outcomes and every 5xx.
import { loadavg } from "node:os";
import { describe, runLifecycleStress } from "../test/support/lifecycle-stress.js";

export async function main(): Promise<boolean> {
  const seconds = Number(process.env.SOAK_LIFECYCLE_S ?? 600);
  console.log(`${seconds} s, 8 clients, 3 load balancers, kill -9 every ~5 s, checks every 10 s after 3 s quiet`);
  const t0 = Date.now();
  const r = await runLifecycleStress({
    durationMs: seconds * 1000, clients: 8, lbs: 3, killEveryMs: 5000, killStartingEveryMs: 5000, checkEveryMs: 10_000, quietMs: 3000, trace: !!process.env.SOAK_TRACE,
    log: (l) => console.log(`[${Math.round((Date.now() - t0) / 1000)} s] ${l}`),
  });
  for (const l of describe(r)) console.log(l);
  console.log(`wall time ${Math.round((Date.now() - t0) / 1000)} s, load average ${loadavg().map((x) => x.toFixed(2)).join(" ")} on 2 cores`);
  return r.violations.length === 0 && r.leftAfterDeleteAll.length === 0;
}
