// Resident memory of the compiled agent over its life, for each young-
// generation size asked: idle after start (3 s, then every 5 s up to 30 s,
// when V8's memory reducer has run), right after a 5 s burst of GET
// /1.0/info from 8 keep-alive mutual-TLS clients, and every 5 s of idle
// after it. The agent runs as installed (its bin's node flags, on an
// existing state dir) with --max-semi-space-size set per row; RSS is read
// from /proc. What it shows: whether a size that serves faster (bigger
// young generation) costs memory an idle amphora keeps.
//
// Environment: BENCH_SEMI_SPACES (default "2,16": MB per semi-space; "" for
// node's default), BENCH_BURST_MS (5000).
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import https from "node:https";
import { tmpdir, loadavg } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { buildIfStale, compiledAgent } from "../bin/build-fresh.js";
import { binNodeFlags, rssMb } from "./agent-runtime.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SEMIS = (process.env.BENCH_SEMI_SPACES ?? "2,16").split(",");
const BURST_MS = Number(process.env.BENCH_BURST_MS ?? 5000);

const rss = (pid: number) => Math.round(rssMb(pid));

async function start(stateDir: string, log: string, semi: string): Promise<{ proc: ChildProcess; url: string }> {
  const out = openSync(log, "w");
  const flags = [...binNodeFlags(ROOT).filter((f) => !f.startsWith("--max-semi-space-size")), ...(semi ? [`--max-semi-space-size=${semi}`] : [])];
  const proc = spawn(process.execPath, [...flags, compiledAgent(ROOT), "--dev", "--state-dir", stateDir, "--listen", "127.0.0.1:0"], {
    stdio: ["ignore", out, "inherit"], env: { ...process.env, AMPHORA_REQUIRE_DIST: "1" },
  });
  closeSync(out);
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await sleep(5)) {
    const m = /"url":"(https:[^"]+)".*"msg":"agent listening"/.exec(readFileSync(log, "utf8"));
    if (m) return { proc, url: m[1]! };
    if (proc.exitCode !== null) break;
  }
  proc.kill("SIGKILL");
  throw new Error(`the agent did not start: ${readFileSync(log, "utf8").slice(-500)}`);
}

async function stop(proc: ChildProcess): Promise<void> {
  if (proc.exitCode !== null || proc.signalCode !== null) return;
  const gone = new Promise((r) => proc.once("exit", r));
  proc.kill("SIGTERM");
  await Promise.race([gone, sleep(5000).then(() => proc.kill("SIGKILL"))]);
}

/** 8 keep-alive clients calling GET /1.0/info for `ms`; returns the calls made. */
async function burst(url: string, pkiDir: string, ms: number): Promise<number> {
  const u = new URL(url);
  const agent = new https.Agent({
    keepAlive: true, maxSockets: 8,
    ca: readFileSync(join(pkiDir, "ca.pem")), cert: readFileSync(join(pkiDir, "client.pem")), key: readFileSync(join(pkiDir, "client-key.pem")),
  });
  const one = () => new Promise<void>((resolve, reject) => {
    https.request({ host: u.hostname, port: u.port, path: "/1.0/info", agent, servername: "localhost" }, (r) => {
      r.resume();
      r.once("end", resolve);
    }).once("error", reject).end();
  });
  let n = 0;
  const end = Date.now() + ms;
  await Promise.all(Array.from({ length: 8 }, async () => {
    while (Date.now() < end) {
      await one();
      n++;
    }
  }));
  agent.destroy();
  return n;
}

export async function main(): Promise<void> {
  if (!buildIfStale(ROOT)) throw new Error("npm run build failed");
  const dir = mkdtempSync(join(tmpdir(), "amphora-bench-memory-"));
  const stateDir = join(dir, "state");
  const rows: string[] = [];
  const load0 = loadavg();
  try {
    await stop((await start(stateDir, join(dir, "first.log"), SEMIS[0]!)).proc); // makes the PKI
    for (const semi of SEMIS) {
      const a = await start(stateDir, join(dir, `agent-${semi || "default"}.log`), semi);
      try {
        const idle: number[] = [];
        await sleep(3000);
        idle.push(rss(a.proc.pid!));
        for (let t = 5; t <= 30; t += 5) {
          await sleep(t === 5 ? 2000 : 5000);
          idle.push(rss(a.proc.pid!));
        }
        const calls = await burst(a.url, join(stateDir, "pki"), BURST_MS);
        const after = [rss(a.proc.pid!)];
        for (let t = 5; t <= 30; t += 5) {
          await sleep(5000);
          after.push(rss(a.proc.pid!));
        }
        const name = semi ? `${semi} MB` : "node's default";
        console.log(`semi-space ${name}: idle after start (3 s, 5..30 s) ${idle.join("/")} MB; burst of ${calls} calls in ${BURST_MS} ms; after it (0..30 s) ${after.join("/")} MB`);
        rows.push(`| ${name} | ${idle[0]} | ${idle.at(-1)} | ${Math.round(calls / (BURST_MS / 1000))} | ${after[0]} | ${after.at(-1)} |`);
      } finally {
        await stop(a.proc);
      }
    }
    console.log("\n| young generation (per semi-space) | RSS 3 s after start, MB | 30 s after start | burst req/s | RSS right after the burst | 30 s after the burst |\n|---|---|---|---|---|---|");
    for (const r of rows) console.log(r);
    console.log(`load average before ${load0.map((x) => x.toFixed(2)).join(" ")}, after ${loadavg().map((x) => x.toFixed(2)).join(" ")}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
