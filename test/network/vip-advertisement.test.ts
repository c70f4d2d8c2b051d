// VIP announcements in SINGLE topology, seen on the wire: a capture
// (tcpdump) in another namespace at the far end of the VIP's veth sees a
// gratuitous ARP for the IPv4 VIP and an unsolicited neighbour advertisement
// for the IPv6 VIP after a start and again after a reload; an
// ACTIVE_STANDBY agent (keepalived announces there) sends none. A missing
// tool is a logged warning, never an error.
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { freePort, octaviaConfig } from "../support/haproxy.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { bindAddresses, VipAdvertiser } from "../../src/network/vip-advertisement.js";
import { Topology, eventually } from "./netns.js";

const V4 = "192.0.2.50";
const V6 = "2001:db8:a::50";

/** tcpdump in `ns` on `dev`, keeping every line; stopped by PID. */
class Capture {
  lines: string[] = [];
  private proc?: ChildProcess;

  async start(ns: string, dev: string): Promise<void> {
    const p = spawn("ip", ["netns", "exec", ns, "tcpdump", "-i", dev, "-n", "-l", "-e", "arp or (icmp6 and ip6[40] == 136)"], { stdio: ["ignore", "pipe", "pipe"] });
    this.proc = p;
    let out = "";
    p.stdout!.on("data", (c: Buffer) => {
      out += c.toString("utf8");
      const parts = out.split("\n");
      out = parts.pop()!;
      this.lines.push(...parts);
    });
    await new Promise<void>((resolve, reject) => {
      let err = "";
      p.stderr!.on("data", (c: Buffer) => {
        err += c.toString("utf8");
        if (/listening on/.test(err)) resolve();
      });
      p.once("exit", (code) => reject(new Error(`tcpdump exited with ${code}: ${err}`)));
    });
  }

  arps(ip: string): number {
    return this.lines.filter((l) => l.includes(`Request who-has ${ip} (ff:ff:ff:ff:ff:ff) tell ${ip}`)).length;
  }

  nas(ip: string): number {
    return this.lines.filter((l) => l.includes(`${ip} > ff02::1`) && l.includes(`neighbor advertisement, tgt is ${ip}`)).length;
  }

  stop(): void {
    if (this.proc?.pid && this.proc.exitCode === null) this.proc.kill("SIGTERM");
  }
}

test("bind addresses: VIPs of bind lines (IPv6 unbracketed as Octavia renders it, or bracketed); no loopback, wildcard or socket", () => {
  const cfg = [
    "frontend a", "    bind 203.0.113.7:80", "    bind 2001:db8::7:443 ssl crt /x.pem",
    "frontend b", "    bind [2001:DB8::8]:80,198.51.100.9:81", "    bind 127.0.0.1:9101", "    bind :::80", "    bind *:80",
    "    bind /run/x.sock", "    bind 203.0.113.7:8080",
  ].join("\n");
  assert.deepEqual(bindAddresses(cfg), ["203.0.113.7", "2001:db8::7", "2001:db8::8", "198.51.100.9"]);
});

describe("VIP announcements on the wire", () => {
  const topo = new Topology();
  const agents: TestAgent[] = [];
  const captures: Capture[] = [];
  const runDir = mkdtempSync(join(tmpdir(), "amt-garp-"));

  /** A load-balancer namespace whose eth1 holds both VIPs, a far end with a capture on it. */
  async function wired(): Promise<{ lbNs: string; capture: Capture }> {
    const lbNs = await topo.netns();
    const far = await topo.netns();
    await topo.veth(lbNs, "eth1", far, "p1", { up: true });
    await topo.sh(lbNs, "ip", ["addr", "add", `${V4}/24`, "dev", "eth1"]);
    await topo.sh(lbNs, "ip", ["addr", "add", `${V6}/64`, "dev", "eth1", "nodad"]);
    const capture = new Capture();
    captures.push(capture);
    await capture.start(far, "p1");
    return { lbNs, capture };
  }

  async function startedLb(agent: TestAgent): Promise<{ reload: () => Promise<unknown> }> {
    const lb = agent.client(LoadBalancerService);
    const lbId = randomUUID();
    const port = await freePort();
    const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port, address: V4, members: [], returnBody: "4" }, { port, address: V6, members: [], returnBody: "6" }] });
    await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.text });
    await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
    return { reload: () => lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.RELOAD }) };
  }

  after(async () => {
    for (const c of captures) c.stop();
    for (const a of agents) await a.cleanup();
    await topo.cleanup();
    rmSync(runDir, { recursive: true, force: true });
  });

  test("SINGLE: a gratuitous ARP (IPv4) and an unsolicited NA (IPv6) after start and again after reload", async () => {
    const { lbNs, capture } = await wired();
    const agent = await startTestAgent({ overrides: { netns: lbNs, topology: "SINGLE" } });
    agents.push(agent);
    assert.equal(capture.arps(V4) + capture.nas(V6), 0);
    const lb = await startedLb(agent);
    assert.ok(await eventually(async () => capture.arps(V4) >= 1 && capture.nas(V6) >= 1, 5000), `after start: ${capture.lines.join("\n")}`);
    const [arps, nas] = [capture.arps(V4), capture.nas(V6)];
    await lb.reload();
    assert.ok(await eventually(async () => capture.arps(V4) > arps && capture.nas(V6) > nas, 5000), `after reload: ${capture.lines.join("\n")}`);
  });

  test("ACTIVE_STANDBY: nothing is announced (keepalived owns the VIP)", async () => {
    const { lbNs, capture } = await wired();
    const agent = await startTestAgent({ overrides: { netns: lbNs, topology: "ACTIVE_STANDBY" } });
    agents.push(agent);
    const lb = await startedLb(agent);
    await lb.reload();
    // Announcements follow a start within milliseconds (the SINGLE case); wait well beyond that.
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(capture.arps(V4), 0, capture.lines.join("\n"));
    assert.equal(capture.nas(V6), 0, capture.lines.join("\n"));
  });

  test("a missing arping or na6 is a logged warning, never an error", async () => {
    const { lbNs } = await wired();
    const logs: Record<string, unknown>[] = [];
    const sink = new Writable({
      write(chunk: Buffer, _e, cb) {
        for (const l of chunk.toString("utf8").split("\n")) if (l.trim()) logs.push(JSON.parse(l) as Record<string, unknown>);
        cb();
      },
    });
    const adv = new VipAdvertiser({
      netns: () => lbNs, topology: () => "SINGLE", logger: pino({ level: "info" }, sink),
      configOf: async () => `frontend f\n    bind ${V4}:80\n    bind ${V6}:80\n`,
      arping: "amt-no-such-arping", na6: "amt-no-such-na6",
    });
    const r = await adv.announce("lb");
    assert.deepEqual(r.map((x) => [x.vip, x.ifname, x.ok]), [[V4, "eth1", false], [V6, "eth1", false]]);
    assert.match(r[0]!.note!, /not installed \(Debian package arping\)/);
    assert.match(r[1]!.note!, /not installed \(Debian package ipv6toolkit\)/);
    const warns = logs.filter((l) => l.level === 40 && /VIP not announced/.test(String(l.msg)));
    assert.equal(warns.length, 2);
  });
});
