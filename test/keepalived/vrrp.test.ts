// keepalived VRRP through the agent: upload validates with the real
// `keepalived -t` in the agent's (test) namespace, start/stop/reload drive a
// real daemonized keepalived there, the VIP it manages is checked with `ip`.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { KeepalivedService, VrrpAction } from "../../src/gen/amphora/v1/keepalived_pb.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { isRunning, readPidFile } from "../../src/keepalived/pid.js";
import { KeepalivedVrrp, configuredVips } from "../../src/keepalived/vrrp.js";
import { run } from "../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { Topology, eventually, ipv4Of } from "../network/netns.js";
import { stopKeepalived, vrrpConfig } from "./support.js";

const fail = async (p: Promise<unknown>) => ConnectError.from(await p.then(() => assert.fail("expected failure"), (e) => e));

describe("keepalived VRRP in a namespace", () => {
  const topo = new Topology();
  let ns = "";
  let agent: TestAgent;
  const base = { routerId: "amt_a", state: "MASTER" as const, priority: 100, iface: "eth1", src: "192.0.2.11", peer: "192.0.2.12" };

  before(async () => {
    ns = await topo.netns();
    const peer = await topo.netns();
    await topo.veth(ns, "eth1", peer, "p1", { up: true });
    await topo.sh(ns, "ip", ["addr", "add", "192.0.2.11/24", "dev", "eth1"]);
    agent = await startTestAgent({ overrides: { netns: ns } });
  });
  after(async () => {
    await stopKeepalived(agent);
    await agent?.cleanup();
    await topo.cleanup();
  });

  test("control before any upload fails clearly; an invalid config is refused and nothing is stored", async () => {
    const client = agent.client(KeepalivedService);
    let e = await fail(client.controlVrrp({ action: VrrpAction.START }));
    // Nothing to start yet: the state does not allow it (REST keeps Octavia's 500: test/keepalived/control-codes.test.ts).
    assert.equal(e.code, Code.FailedPrecondition);
    assert.equal(e.rawMessage, "Failed to start keepalived");
    assert.match(e.findDetails(ErrorInfoSchema)[0]!.details, /no keepalived configuration/);

    e = await fail(client.putVrrpConfig({ config: "vrrp_instance x {\n  stateX MASTER\n}\n" }));
    // The caller's input is at fault (REST keeps Octavia's 500 through the route's invalid_status).
    assert.equal(e.code, Code.InvalidArgument);
    assert.equal(e.rawMessage, "Failed to upload keepalived configuration.");
    assert.match(e.findDetails(ErrorInfoSchema)[0]!.details, /Unknown keyword 'stateX'/);
    // An interface that does not exist in the namespace is caught too.
    e = await fail(client.putVrrpConfig({ config: vrrpConfig({ ...base, iface: "eth9", vips: ["192.0.2.10/32"] }) }));
    assert.match(e.findDetails(ErrorInfoSchema)[0]!.details, /eth9/);
    assert.equal((await agent.ctx.keepalived.status()).configured, false);
  });

  test("a rejected config leaves <stateDir>/vrrp/ (its check scripts) exactly as before", async () => {
    const client = agent.client(KeepalivedService);
    const dir = join(agent.stateDir, "vrrp");
    const snapshot = () => existsSync(dir)
      ? readdirSync(dir).sort().map((n) => [n, readFileSync(join(dir, n), "utf8"), statSync(join(dir, n)).mode] as const)
      : "no folder";
    // eth9 does not exist in the namespace: keepalived -t rejects it.
    const bad = (script: string) => vrrpConfig({ ...base, iface: "eth9", vips: ["192.0.2.10/32"], checkScript: join(dir, script) });
    // No folder yet: none is made.
    await fail(client.putVrrpConfig({ config: bad("check_script.sh") }));
    assert.equal(snapshot(), "no folder");
    // A folder with a script: neither it nor a new one the rejected config names is written.
    mkdirSync(dir);
    writeFileSync(join(dir, "check_script.sh"), "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const before = snapshot();
    await fail(client.putVrrpConfig({ config: bad("check_script.sh") }));
    await fail(client.putVrrpConfig({ config: bad("other.sh") }));
    assert.deepEqual(snapshot(), before);
    rmSync(dir, { recursive: true });
  });

  test("a stored config whose check script cannot be rewritten afterwards is answered as stored (the failure is logged)", async (t) => {
    const client = agent.client(KeepalivedService);
    const dir = join(agent.stateDir, "vrrp");
    const script = join(dir, "check_script.sh");
    mkdirSync(dir);
    writeFileSync(script, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    // keepalived -t finds it; the agent's rewrite after storing cannot replace it.
    const immutable = await run("chattr", ["+i", script]);
    try {
      if (immutable.exitCode !== 0) return t.skip(`chattr +i unsupported here: ${immutable.stderr.trim()}`);
      const config = vrrpConfig({ ...base, vips: ["192.0.2.10/32"], checkScript: script });
      const res = await client.putVrrpConfig({ config });
      assert.equal(res.message, "OK");
      assert.equal(await agent.ctx.keepalived.config(), config, "stored");
    } finally {
      await run("chattr", ["-i", script]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("an Octavia-rendered config whose check script is not installed is accepted, with the warning", async () => {
    const octavia = `vrrp_script check_script {
  script /var/lib/octavia/vrrp/check_script.sh
  interval 5
  fall 2
  rise 2
}

vrrp_instance amt_octavia {
  interface eth1
  virtual_router_id 1
  priority 100
  nopreempt
  accept
  advert_int 1
  authentication {
    auth_type PASS
    auth_pass a1b2c3d4
  }
  unicast_src_ip 192.0.2.11
  unicast_peer {
    192.0.2.12
  }
  virtual_ipaddress {
    192.0.2.10
  }
  virtual_routes {
    192.0.2.0/24 dev eth1 src 192.0.2.10 scope link table 1
  }
  virtual_rules {
    from 192.0.2.10/32 table 1 priority 100
  }
  track_script {
    check_script
  }
}
`;
    const res = await agent.client(KeepalivedService).putVrrpConfig({ config: octavia });
    assert.equal(res.message, "OK");
    assert.match(res.details, /Disabling track script check_script/);
  });

  test("upload, start: keepalived runs daemonized in the namespace and holds the VIP", async () => {
    const client = agent.client(KeepalivedService);
    const conf = vrrpConfig({ ...base, vips: ["192.0.2.10/32"] });
    assert.equal((await client.putVrrpConfig({ config: conf })).message, "OK");
    assert.equal(readFileSync(agent.ctx.keepalived.configFile, "utf8"), conf);

    const res = await client.controlVrrp({ action: VrrpAction.START });
    assert.equal(res.details, "keepalived started");
    const st = await agent.ctx.keepalived.status();
    assert.equal(st.running, true);
    assert.ok(st.vrrpPid, "VRRP child is up");
    // Daemonized: its parent is not the agent.
    const ppid = Number(readFileSync(`/proc/${st.pid}/stat`, "utf8").split(") ")[1]!.split(" ")[1]);
    assert.notEqual(ppid, process.pid);
    // It runs in the test namespace.
    assert.equal(netnsOfPid(st.pid!), netnsId(ns));
    assert.ok(await eventually(async () => (await ipv4Of(topo, ns, "eth1")).includes("192.0.2.10/32"), 10_000), "VIP appears");

    const status = await client.getVrrpStatus({});
    assert.deepEqual(
      { configured: status.configured, running: status.running, pid: status.pid, vips: status.vips, held: status.vipsHeld },
      { configured: true, running: true, pid: st.pid, vips: ["192.0.2.10"], held: ["192.0.2.10"] },
    );

    // Starting again leaves the running one alone.
    await client.controlVrrp({ action: VrrpAction.START });
    assert.equal((await agent.ctx.keepalived.status()).pid, st.pid);
  });

  test("a bad upload while running keeps the running config; reload applies a new good one", async () => {
    const client = agent.client(KeepalivedService);
    const before = readFileSync(agent.ctx.keepalived.configFile, "utf8");
    await fail(client.putVrrpConfig({ config: "garbage\n" }));
    assert.equal(readFileSync(agent.ctx.keepalived.configFile, "utf8"), before);

    await client.putVrrpConfig({ config: vrrpConfig({ ...base, vips: ["192.0.2.10/32", "192.0.2.20/32"] }) });
    const res = await client.controlVrrp({ action: VrrpAction.RELOAD });
    assert.equal(res.details, "keepalived reloaded");
    assert.ok(await eventually(async () => (await ipv4Of(topo, ns, "eth1")).includes("192.0.2.20/32"), 10_000), "new VIP after reload");
  });

  test("stop ends keepalived and releases the VIPs; stop and reload when stopped behave", async () => {
    const client = agent.client(KeepalivedService);
    const pid = (await agent.ctx.keepalived.status()).pid!;
    const res = await client.controlVrrp({ action: VrrpAction.STOP });
    assert.equal(res.details, "keepalived stopped");
    assert.equal(await isRunning(pid, "keepalived"), false);
    assert.equal(await readPidFile(agent.ctx.keepalived.pidFile), undefined);
    assert.deepEqual(await ipv4Of(topo, ns, "eth1"), ["192.0.2.11/24"]);
    const status = await client.getVrrpStatus({});
    assert.equal(status.running, false);
    assert.equal(status.pid, 0);
    assert.deepEqual(status.vips, ["192.0.2.10", "192.0.2.20"]);
    assert.deepEqual(status.vipsHeld, []);
    await client.controlVrrp({ action: VrrpAction.STOP });
    const e = await fail(client.controlVrrp({ action: VrrpAction.RELOAD }));
    assert.equal(e.rawMessage, "Failed to reload keepalived");
    assert.equal(e.code, Code.FailedPrecondition);
    const bad = await fail(client.controlVrrp({ action: VrrpAction.UNSPECIFIED }));
    assert.equal(bad.code, Code.InvalidArgument);
  });

  test("a keepalived killed with SIGKILL leaves pid files that do not block the next start", async () => {
    const client = agent.client(KeepalivedService);
    await client.controlVrrp({ action: VrrpAction.START });
    const pid = (await agent.ctx.keepalived.status()).pid!;
    process.kill(pid, "SIGKILL");
    assert.ok(await eventually(async () => !(await isRunning(pid, "keepalived")), 5000));
    // Its VRRP child may outlive it, still holding the VIP; start must not run a second one beside it.
    const orphan = await readPidFile(agent.ctx.keepalived.vrrpPidFile);
    await client.controlVrrp({ action: VrrpAction.START });
    const st = await agent.ctx.keepalived.status();
    assert.equal(st.running, true);
    assert.notEqual(st.pid, pid);
    if (orphan) assert.equal(await isRunning(orphan, "keepalived"), false, "orphaned VRRP child was ended");
  });

  test("stop also ends a VRRP child whose parent was SIGKILLed, releasing the VIP", async () => {
    const client = agent.client(KeepalivedService);
    const k = agent.ctx.keepalived;
    assert.ok(await eventually(async () => (await k.status()).vrrpPid !== undefined, 5000));
    const st = await k.status();
    assert.ok(await eventually(async () => (await ipv4Of(topo, ns, "eth1")).includes("192.0.2.10/32"), 10_000));
    process.kill(st.pid!, "SIGKILL");
    assert.ok(await eventually(async () => !(await isRunning(st.pid!, "keepalived")), 5000));
    await client.controlVrrp({ action: VrrpAction.STOP });
    assert.equal(await isRunning(st.vrrpPid!, "keepalived"), false);
    assert.ok(await eventually(async () => !(await ipv4Of(topo, ns, "eth1")).includes("192.0.2.10/32"), 5000), "VIP released");
  });
});

/** Network namespace identity of a process. */
function netnsOfPid(pid: number): string {
  return readlinkSync(`/proc/${pid}/ns/net`);
}
/** The same identity for a named namespace (inode of its bind mount). */
function netnsId(ns: string): string {
  return `net:[${statSync(`/run/netns/${ns}`).ino}]`;
}

test("configuredVips reads virtual_ipaddress blocks, ignoring comments and options", () => {
  const conf = `vrrp_instance a {
  virtual_ipaddress {
    192.0.2.10
    192.0.2.11/32 dev eth1 label eth1:1   # comment 198.51.100.1
    ! 198.51.100.2
  }
  virtual_ipaddress_excluded {
    2001:DB8::10/128
  }
  unicast_peer {
    192.0.2.12
  }
}`;
  assert.deepEqual(configuredVips(conf), ["192.0.2.10", "192.0.2.11", "2001:db8::10"]);
});

describe("a keepalived start that times out", () => {
  const topo = new Topology();
  const stateDir = mkdtempSync(join(tmpdir(), "amt-kto-"));
  let k: KeepalivedVrrp | undefined;

  after(async () => {
    if (k) {
      await k.stop().catch(() => {});
      const pid = await readPidFile(k.pidFile);
      if (pid && (await isRunning(pid, "keepalived"))) process.kill(pid, "SIGKILL");
    }
    await topo.cleanup();
    rmSync(stateDir, { recursive: true, force: true });
  });

  test("leaves no daemon unaccounted for: wanted-state is running, so it is adopted and stop() ends it", async () => {
    const ns = await topo.netns();
    k = new KeepalivedVrrp(stateDir, ns, undefined, { startMs: 300, stopMs: 5000 });
    // Valid, but without a vrrp_instance keepalived starts no VRRP child:
    // the readiness check can never pass, so start() always times out.
    await k.upload("global_defs {\n  router_id amt_timeout\n}\n");
    const e = await k.start().then(() => assert.fail("expected a timeout"), (x) => x);
    assert.equal(e.message, "Failed to start keepalived");
    assert.match(e.details, /did not come up/);
    assert.ok(await eventually(async () => (await k!.status()).running, 5000), "the launched daemon runs");
    assert.equal(readFileSync(k.wantedFile, "utf8").trim(), "running", "a running daemon is recorded as wanted");
    assert.equal(await k.resume(), "adopted");
    const pid = (await k.status()).pid!;
    await k.stop();
    assert.equal(await isRunning(pid, "keepalived"), false);
    assert.equal(readFileSync(k.wantedFile, "utf8").trim(), "stopped");
  });
});

describe("a load-balancer namespace that does not exist yet", () => {
  const topo = new Topology();
  let agent: TestAgent | undefined;
  after(async () => {
    await agent?.cleanup();
    await topo.cleanup();
  });

  test("an upload is refused as a precondition naming the namespace, not as an invalid configuration", async () => {
    const ns = topo.reserveName();
    agent = await startTestAgent({ overrides: { netns: ns } });
    const e = await fail(agent.client(KeepalivedService).putVrrpConfig({
      config: vrrpConfig({ routerId: "amt_n", state: "MASTER", priority: 100, iface: "eth1", src: "192.0.2.11", peer: "192.0.2.12", vips: ["192.0.2.10/32"] }),
    }));
    assert.equal(e.code, Code.FailedPrecondition);
    const info = e.findDetails(ErrorInfoSchema)[0]!;
    assert.equal(info.reason, "NETNS_MISSING");
    assert.match(info.details, new RegExp(`${ns} does not exist yet`));
    assert.equal((await agent.ctx.keepalived.status()).configured, false);
  });
});
