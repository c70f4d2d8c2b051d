// keepalived's haproxy check script (Octavia's vrrp_script check_script):
// written by the agent where the uploaded configuration names it (only in
// <stateDir>/vrrp/), run with the real sh against real haproxy processes, and
// tracked by two real keepalived instances in test namespaces: when the
// MASTER's haproxy dies, the VIP moves to the BACKUP.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { KeepalivedService, VrrpAction } from "../../src/gen/amphora/v1/keepalived_pb.js";
import { LoadBalancerAction, LoadBalancerService } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { checkScriptPaths, confineCheckScript, renderCheckScript } from "../../src/keepalived/check-script.js";
import { run } from "../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { freePort, killHaproxiesUnder, octaviaConfig } from "../support/haproxy.js";
import { Topology, eventually, ipv4Of } from "../network/netns.js";
import { stopKeepalived, vrrpConfig } from "./support.js";

const sh = (script: string) => run("sh", [script], { timeoutMs: 5000 });

/**
 * Keeps 127.0.0.1:`port` taken in `ns`, so haproxy cannot start there again:
 * the agent may restart a haproxy that died, and the test needs it to stay dead.
 */
async function holdPort(ns: string, port: number): Promise<() => void> {
  const p = spawn("ip", ["netns", "exec", ns, "socat", `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, "SYSTEM:true"], { stdio: "ignore" });
  const held = await eventually(async () => (await run("ss", ["-Hltn", `sport = :${port}`], { netns: ns })).stdout.includes(`127.0.0.1:${port}`), 5000);
  assert.ok(held, `port ${port} held in ${ns}`);
  return () => {
    try { p.kill("SIGKILL"); } catch { /* gone */ }
  };
}

test("the script paths of vrrp_script blocks are read, quoted or not, comments ignored", () => {
  const conf = `vrrp_script check_script {
  script /var/lib/octavia/vrrp/check_script.sh
  interval 5
}
vrrp_script other {
  script "/srv/x/check.sh --flag"   # comment
}
# vrrp_script gone {
#   script /nope.sh
# }
vrrp_instance a {
  track_script {
    check_script
  }
}`;
  assert.deepEqual(checkScriptPaths(conf), ["/var/lib/octavia/vrrp/check_script.sh", "/srv/x/check.sh"]);
});

test("the agent writes check scripts only directly in <stateDir>/vrrp/", () => {
  const s = "/var/lib/octavia";
  assert.deepEqual(confineCheckScript(s, "/var/lib/octavia/vrrp/check_script.sh"), { path: "/var/lib/octavia/vrrp/check_script.sh" });
  for (const bad of [
    "/var/lib/octavia/amphora-agent.conf", "/var/lib/octavia/vrrp/../amphora-agent.conf", "/var/lib/octavia/vrrp/sub/x.sh",
    "/etc/passwd", "vrrp/check_script.sh", "/var/lib/octavia/vrrp/.hidden", "/var/lib/octavia/vrrp/",
  ]) assert.ok("why" in confineCheckScript(s, bad), bad);
});

describe("the rendered script, run by sh", () => {
  const dir = mkdtempSync(join(tmpdir(), "amt-chk-"));
  const script = join(dir, "check.sh");
  const pids: number[] = [];
  after(() => {
    for (const p of pids) try { process.kill(p, "SIGKILL"); } catch { /* gone */ }
    rmSync(dir, { recursive: true, force: true });
  });

  test("passes only when every pid file names a live haproxy; a zombie, another program, a missing file or no load balancer fail", async () => {
    // A live process named haproxy: a copy of sleep under that name.
    const fake = join(dir, "haproxy");
    writeFileSync(fake, readFileSync("/bin/sleep"), { mode: 0o755 });
    const live = spawn(fake, ["30"], { stdio: "ignore" });
    pids.push(live.pid!);
    // A zombie haproxy: its parent (exec'd into sleep) never reaps it, as PID 1 here never reaps a dead daemon.
    const parent = spawn("sh", ["-c", `${fake} 0.3 & echo $!; exec sleep 30`], { stdio: ["ignore", "pipe", "ignore"] });
    pids.push(parent.pid!);
    const zombie = Number(await new Promise<string>((res) => parent.stdout!.once("data", (d) => res(String(d).trim()))));
    assert.ok(await eventually(async () => readFileSync(`/proc/${zombie}/stat`, "utf8").includes(") Z"), 5000), "zombie exists");
    const other = spawn("sleep", ["30"], { stdio: "ignore" });
    pids.push(other.pid!);
    const pidFile = (name: string, pid: number | string) => {
      const f = join(dir, name);
      writeFileSync(f, `${pid}\n`);
      return f;
    };
    const ok = pidFile("ok.pid", live.pid!);
    const check = async (files: string[]) => {
      writeFileSync(script, renderCheckScript(files), { mode: 0o755 });
      return (await sh(script)).exitCode;
    };
    assert.equal(await check([ok]), 0);
    assert.equal(await check([ok, ok]), 0);
    assert.notEqual(await check([ok, pidFile("z.pid", zombie)]), 0, "zombie");
    assert.notEqual(await check([pidFile("o.pid", other.pid!)]), 0, "not haproxy");
    assert.notEqual(await check([join(dir, "missing.pid")]), 0, "no pid file");
    assert.notEqual(await check([pidFile("junk.pid", "12ab")]), 0, "junk");
    assert.notEqual(await check([]), 0, "nothing started");
    // Quoting: a path with a space and a quote.
    assert.equal(await check([pidFile("it's ok.pid", live.pid!)]), 0);
  });
});

describe("VRRP failover when the MASTER's haproxy dies", () => {
  const topo = new Topology();
  const VIP = "192.0.2.10";
  let nsA = "";
  let nsB = "";
  let a: TestAgent;
  let b: TestAgent;
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));

  before(async () => {
    nsA = await topo.netns();
    nsB = await topo.netns();
    await topo.veth(nsA, "eth1", nsB, "eth1", { up: true });
    await topo.sh(nsA, "ip", ["addr", "add", "192.0.2.11/24", "dev", "eth1"]);
    await topo.sh(nsB, "ip", ["addr", "add", "192.0.2.12/24", "dev", "eth1"]);
    // A haproxy that dies is started again only after a minute: long after the
    // test's checks, so the killed one stays dead without holding its port.
    const restartBackoff = { initialMs: 60_000, maxMs: 60_000 };
    a = await startTestAgent({ overrides: { netns: nsA, topology: "ACTIVE_STANDBY" }, restartBackoff });
    b = await startTestAgent({ overrides: { netns: nsB, topology: "ACTIVE_STANDBY" }, restartBackoff });
  });
  after(async () => {
    await stopKeepalived(a);
    await stopKeepalived(b);
    // The agents first (they restart a haproxy that dies while they run), then haproxy.
    await a?.cleanup();
    await b?.cleanup();
    for (const x of [a, b]) if (x) await killHaproxiesUnder(x.stateDir);
    await topo.cleanup();
    rmSync(runDir, { recursive: true, force: true });
  });

  const hasVip = async (ns: string) => (await ipv4Of(topo, ns, "eth1")).includes(`${VIP}/32`);

  test("the check script is written on upload; the VIP leaves a MASTER whose haproxy was killed", async () => {
    const lbId = randomUUID();
    const port = await freePort();
    const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port, returnBody: "hi", members: [] }] }).text;
    for (const agent of [a, b]) {
      const lb = agent.client(LoadBalancerService);
      await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.replace(`${lbId}.sock`, `${lbId}-${agent.port}.sock`) });
      await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
    }
    const common = { iface: "eth1", vips: [`${VIP}/32`] };
    const script = (agent: TestAgent) => join(agent.stateDir, "vrrp", "check_script.sh");
    const res = await a.client(KeepalivedService).putVrrpConfig({
      config: vrrpConfig({ ...common, routerId: "amt_a", state: "MASTER", priority: 150, src: "192.0.2.11", peer: "192.0.2.12", checkScript: script(a) }),
    });
    // keepalived found the script: it does not disable the tracking.
    assert.doesNotMatch(res.details, /Disabling track script/);
    assert.equal(statSync(script(a)).mode & 0o777, 0o755);
    assert.equal((await sh(script(a))).exitCode, 0, "haproxy runs: the check passes");
    await b.client(KeepalivedService).putVrrpConfig({
      config: vrrpConfig({ ...common, routerId: "amt_b", state: "BACKUP", priority: 100, src: "192.0.2.12", peer: "192.0.2.11", checkScript: script(b) }),
    });
    await a.client(KeepalivedService).controlVrrp({ action: VrrpAction.START });
    assert.ok(await eventually(() => hasVip(nsA), 15_000), "MASTER holds the VIP");
    await b.client(KeepalivedService).controlVrrp({ action: VrrpAction.START });
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await hasVip(nsB), false, "BACKUP does not take the VIP while the MASTER's haproxy runs");

    // haproxy dies behind the agent's back (its master becomes a zombie here);
    // the agent's restart of it is a minute away (restartBackoff above).
    const pid = Number(readFileSync(join(a.stateDir, "lb", lbId, "haproxy.pid"), "utf8").trim());
    process.kill(pid, "SIGKILL");
    assert.ok(await eventually(() => hasVip(nsB), 15_000), "VIP moved to the BACKUP");
    assert.ok(await eventually(async () => !(await hasVip(nsA)), 5000), "the MASTER gave the VIP up");
    assert.notEqual((await sh(script(a))).exitCode, 0);
    // Still wanted after the agent noticed the death (pid file removed): the check keeps failing.
    assert.deepEqual(a.ctx.keepalived.checks.wantedIds(), [lbId]);

    // Stopped through the agent: no longer required. Started again: required and passing.
    await a.client(LoadBalancerService).controlLoadBalancer({ lbId, action: LoadBalancerAction.STOP });
    assert.ok(await eventually(async () => a.ctx.keepalived.checks.wantedIds().length === 0, 5000));
    await a.client(LoadBalancerService).controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
    assert.ok(await eventually(async () => (await sh(script(a))).exitCode === 0, 5000), "check passes again once haproxy runs");
    assert.match(readFileSync(join(a.stateDir, "keepalived", "haproxy-wanted"), "utf8"), new RegExp(lbId));
  });
});

describe("an agent restart", () => {
  const stateDir = mkdtempSync(join(tmpdir(), "amt-chk-"));
  const topo = new Topology();
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  let agent: TestAgent | undefined;
  after(async () => {
    await agent?.cleanup();
    await killHaproxiesUnder(stateDir);
    await topo.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  });

  test("keeps a load balancer whose haproxy died required, also when the agent's list was lost (the manager's wanted state decides), and rewrites the script of a stored configuration", async (t) => {
    const ns = await topo.netns();
    const peer = await topo.netns();
    await topo.veth(ns, "eth1", peer, "p1", { up: true });
    await topo.sh(ns, "ip", ["addr", "add", "192.0.2.11/24", "dev", "eth1"]);
    agent = await startTestAgent({ stateDir, overrides: { netns: ns } });
    // Two: one whose haproxy dies, one that keeps running (with none running the script fails anyway).
    const dead = randomUUID();
    const alive = randomUUID();
    const port = await freePort();
    const lb = agent.client(LoadBalancerService);
    for (const [lbId, p] of [[dead, port], [alive, await freePort()]] as const) {
      await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: octaviaConfig({ lbId, runDir, listeners: [{ port: p, returnBody: "hi", members: [] }] }).text });
      await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
    }
    const script = join(stateDir, "vrrp", "check_script.sh");
    await agent.client(KeepalivedService).putVrrpConfig({
      config: vrrpConfig({ routerId: "amt_r", state: "MASTER", priority: 100, iface: "eth1", src: "192.0.2.11", peer: "192.0.2.12", vips: ["192.0.2.10/32"], checkScript: script }),
    });
    assert.equal((await sh(script)).exitCode, 0, "both run: the check passes");
    await agent.stop();
    const pid = Number(readFileSync(join(stateDir, "lb", dead, "haproxy.pid"), "utf8").trim());
    process.kill(pid, "SIGKILL");
    rmSync(script);
    // As after an upgrade from a version without it, or a lost file: only the manager knows `dead` is wanted running.
    rmSync(join(stateDir, "keepalived", "haproxy-wanted"));
    // The restarted agent may try to start the haproxy again: keep it from succeeding.
    t.after(await holdPort(ns, port));
    agent = await startTestAgent({ stateDir, overrides: { netns: ns } });
    assert.ok(existsSync(script), "rewritten at start");
    assert.deepEqual(agent.ctx.keepalived.checks.wantedIds(), [dead, alive].sort());
    assert.notEqual((await sh(script)).exitCode, 0, "one haproxy is dead: the check fails");
  });
});
