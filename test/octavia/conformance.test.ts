// Conformance with an unmodified Octavia 11 controller (Debian
// python3-octavia): controller.py drives real agents with Octavia's own
// HaproxyAmphoraLoadBalancerDriver (+ keepalived mixin), its Jinja templates,
// its local certificate manager and generator and its health manager's
// heartbeat receiver; this file builds the machines and networks, starts
// the agents from Octavia-rendered amphora-agent.conf files (not --dev),
// answers the script's checkpoints with real traffic from a client, and
// asserts every call.
//
// Networks (namespaces amt-<random>, bridges in a switch namespace):
//   management 198.51.100.0/24: controller .1, amphorae .11 (S), .12 (A), .13 (B)
//   VIP        203.0.113.0/24:  client .50; SINGLE VIP .100, ACTIVE_STANDBY VIP .200,
//                               VRRP addresses .11/.12/.13
//   members    192.0.2.0/24:    members .20 (:8080 m1, :8081 m2, :8082 m3), amphorae .11/.12/.13
// Each amphora is a namespace holding its management port (eth0) and the
// two ports "Nova hot-plugged" (ens4 VIP, ens5 members, down and
// unconfigured, known to the controller by MAC); the agent runs there, as
// on an amphora's root namespace, creates its load-balancer namespace at
// the first plug and moves the ports in as eth1 and eth2 (Octavia's names).
//
// What this machine forces (the rest is as in a deployment):
// - amphora_network_namespace: one amphora-haproxy per machine is
//   Octavia's; three amphorae share this one, so each agent's conf gets a
//   unique name (the option Octavia's agent fixes; ours reads it).
// - connection_limit 1000 on every listener: Octavia's default (50,000)
//   needs more file descriptors than the hard limit here (20,000).
// - no IPVS in this kernel: the UDP listener gets the agent's clear refusal
//   (409, IPVS_UNAVAILABLE), which the driver raises as Conflict.
// - base_path per amphora (Octavia's is /var/lib/octavia everywhere): the
//   script points the controller's [haproxy_amphora] paths at the amphora
//   each call is for.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { run } from "../../src/system/exec.js";
import { Topology } from "../network/netns.js";
import { killHaproxiesUnder } from "../support/haproxy.js";

const PY = "/usr/bin/python3";
const HERE = resolve("test/octavia");
const BIND_PORT = 9443;

type CallRecord = {
  call: string; amphora: string; ok: boolean; value?: unknown; error?: string; refusal?: string; trace?: string;
  http: { method: string; url: string; status: number; body: string }[]; ms: number;
};
type Check = { name: string; ok: boolean; detail: string };

const AMPS = {
  s: { mgmt: "198.51.100.11", vrrp: "203.0.113.11", member: "192.0.2.11", vipMac: "fa:16:3e:00:01:11", memberMac: "fa:16:3e:00:02:11", topology: "SINGLE" },
  a: { mgmt: "198.51.100.12", vrrp: "203.0.113.12", member: "192.0.2.12", vipMac: "fa:16:3e:00:01:12", memberMac: "fa:16:3e:00:02:12", topology: "ACTIVE_STANDBY" },
  b: { mgmt: "198.51.100.13", vrrp: "203.0.113.13", member: "192.0.2.13", vipMac: "fa:16:3e:00:01:13", memberMac: "fa:16:3e:00:02:13", topology: "ACTIVE_STANDBY" },
} as const;
type AmpKey = keyof typeof AMPS;
const SINGLE_VIP = "203.0.113.100";
const AS_VIP = "203.0.113.200";
const PEER_PORT = 1025;

/** A child process whose output is kept; ended by its PID. */
class Proc {
  out = "";
  err = "";
  readonly p: ChildProcess;
  constructor(file: string, args: string[], stdinPipe = false) {
    this.p = spawn(file, args, { stdio: [stdinPipe ? "pipe" : "ignore", "pipe", "pipe"] });
    this.p.stdout!.on("data", (c: Buffer) => (this.out += c.toString("utf8")));
    this.p.stderr!.on("data", (c: Buffer) => (this.err += c.toString("utf8")));
  }
  waitFor(re: RegExp, what: string, ms = 30_000): Promise<void> {
    return new Promise((resolve_, reject) => {
      const timer = setTimeout(() => reject(new Error(`${what}: not ready within ${ms} ms\n${this.out.slice(-2000)}\n${this.err.slice(-2000)}`)), ms);
      const check = () => {
        if (re.test(this.out) || re.test(this.err)) {
          clearTimeout(timer);
          resolve_();
        }
      };
      this.p.stdout!.on("data", check);
      this.p.stderr!.on("data", check);
      this.p.once("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`${what} exited with ${code}\n${this.out.slice(-2000)}\n${this.err.slice(-3000)}`));
      });
      check();
    });
  }
  async stop(): Promise<void> {
    if (this.p.exitCode !== null || this.p.signalCode !== null || !this.p.pid) return;
    const gone = new Promise((r) => this.p.once("exit", r));
    this.p.kill("SIGTERM");
    const t = setTimeout(() => this.p.kill("SIGKILL"), 5000);
    await gone;
    clearTimeout(t);
  }
}

/** Kills keepalived processes whose pid files lie under `dir` (the agents keep them in their state dirs). */
function killKeepalivedsUnder(dir: string): void {
  const walk = (d: string): string[] => readdirSync(d, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(d, e.name)) : e.name.endsWith(".pid") ? [join(d, e.name)] : []);
  if (!existsSync(dir)) return;
  for (const f of walk(dir)) {
    const pid = Number(readFileSync(f, "utf8").trim());
    if (!Number.isInteger(pid) || pid <= 0) continue;
    try {
      if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() === "keepalived") process.kill(pid, "SIGKILL");
    } catch {
      // gone
    }
  }
}

describe("an unmodified Octavia 11 controller drives the agent end to end", () => {
  const topo = new Topology();
  const work = mkdtempSync(join(tmpdir(), "amt-octavia-"));
  const procs: Proc[] = [];
  const records: CallRecord[] = [];
  const checks: Check[] = [];
  const ns = {} as Record<"sw" | "ctl" | "client" | "member", string>;
  const hostNs = {} as Record<AmpKey, string>;
  const lbNs = {} as Record<AmpKey, string>;
  const ids = { s: randomUUID(), a: randomUUID(), b: randomUUID() } as Record<AmpKey, string>;
  let garp: Proc | undefined;
  const agentLogs: Record<string, Proc> = {};

  const check = (name: string, ok: boolean, detail = "") => checks.push({ name, ok, detail });

  async function curl(args: string[]): Promise<{ code: number; body: string; err: string }> {
    const r = await run("curl", ["-sS", "--max-time", "3", ...args], { netns: ns.client, timeoutMs: 10_000 });
    return { code: r.exitCode, body: r.stdout, err: r.stderr };
  }

  async function bodies(url: string, n: number, extra: string[] = []): Promise<string[]> {
    const out: string[] = [];
    for (let i = 0; i < n; i++) {
      const r = await curl([...extra, url]);
      out.push(r.code === 0 ? r.body : `curl ${r.code}: ${r.err.trim()}`);
    }
    return out;
  }

  async function holdsVip(key: AmpKey, vip: string): Promise<boolean> {
    const r = await run("ip", ["-n", lbNs[key], "-j", "addr", "show"], { timeoutMs: 5000 });
    if (r.exitCode !== 0) return false;
    return (JSON.parse(r.stdout) as { addr_info?: { local: string }[] }[]).some((l) => (l.addr_info ?? []).some((a) => a.local === vip));
  }

  async function peerPortBound(key: AmpKey): Promise<string> {
    const r = await run("ss", ["-Hltn", `sport = :${PEER_PORT}`], { netns: lbNs[key], timeoutMs: 5000 });
    return r.stdout.trim();
  }

  async function eventually(cond: () => Promise<boolean>, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    for (;;) {
      if (await cond().catch(() => false)) return true;
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  const garps = () => (garp?.out ?? "").split("\n").filter((l) => l.includes(`Request who-has ${SINGLE_VIP} (ff:ff:ff:ff:ff:ff) tell ${SINGLE_VIP}`)).length;
  let garpsSeen = 0;

  /** The traffic and namespace checks at each checkpoint of the script. */
  const checkpoints: Record<string, (info: Record<string, unknown>) => Promise<void>> = {
    "single-serving": async (info) => {
      // The stored config as Octavia's template rendered it (user nobody), with the agent's user/group file.
      const hc = await run("haproxy", ["-c", "-f", String(info.config), "-f", String(info.user_group)], { timeoutMs: 30_000 });
      check("SINGLE: the template-rendered config checks without any ALERT (no duplicate user/group)", hc.exitCode === 0 && !/\[ALERT\]/.test(hc.stderr), hc.stderr);
      const http = await bodies(`http://${SINGLE_VIP}/`, 6);
      check("SINGLE: HTTP through the VIP reaches both members", http.includes("m1") && http.includes("m2"), http.join(", "));
      const tcp = await curl([`http://${SINGLE_VIP}:81/`]);
      check("SINGLE: TCP listener through the VIP", tcp.body === "m1", JSON.stringify(tcp));
      const tls = join(work, "tls");
      const https = (host: string, cert?: string) => curl([
        "--cacert", join(tls, "listener-ca.pem"), "--resolve", `${host}:443:${SINGLE_VIP}`,
        ...(cert ? ["--cert", join(tls, cert)] : []), `https://${host}/`,
      ]);
      const def = await https("www.example.org", "good-client.pem");
      check("SINGLE: TERMINATED_HTTPS default certificate (name verified) with a client certificate", def.body === "m2", JSON.stringify(def));
      const sni = await https("sni.example.org", "good-client.pem");
      check("SINGLE: TERMINATED_HTTPS SNI certificate (name verified)", sni.body === "m2", JSON.stringify(sni));
      const none = await https("www.example.org");
      check("SINGLE: client certificate required (client CA)", none.code !== 0 && none.body !== "m2", JSON.stringify(none));
      const revoked = await https("www.example.org", "revoked-client.pem");
      check("SINGLE: revoked client certificate refused (CRL)", revoked.code !== 0 && revoked.body !== "m2", JSON.stringify(revoked));
      const seen = await eventually(async () => garps() >= 1, 5000);
      garpsSeen = garps();
      check("SINGLE: gratuitous ARP for the VIP after start, seen from the client", seen, `${garpsSeen} seen`);
    },
    "single-reloaded": async (info) => {
      // Octavia's agent saves the server states (`show servers state`) to the
      // config's server-state-file before a reload, so runtime states survive it.
      const stateFile = String(info.state_file);
      const saved = existsSync(stateFile) ? readFileSync(stateFile, "utf8") : "";
      check("SINGLE: server states saved to the config's server-state-file before the reload", /^1\n# be_id be_name srv_id srv_name/m.test(saved), saved.slice(0, 300) || `${stateFile} missing`);
      const http = await bodies(`http://${SINGLE_VIP}/`, 2);
      check("SINGLE: serving after reload", http.every((b) => b === "m1" || b === "m2"), http.join(", "));
      const more = await eventually(async () => garps() > garpsSeen, 5000);
      check("SINGLE: gratuitous ARP again after reload", more, `${garps()} seen (was ${garpsSeen})`);
    },
    "single-member-added": async () => {
      const http = await bodies(`http://${SINGLE_VIP}/`, 9);
      check("SINGLE: the added member receives traffic", http.includes("m3"), http.join(", "));
    },
    "single-listener-deleted": async () => {
      const tls = await curl(["-k", `https://${SINGLE_VIP}/`]);
      check("SINGLE: deleted TERMINATED_HTTPS listener no longer answers", tls.code !== 0, JSON.stringify(tls));
      const http = await curl([`http://${SINGLE_VIP}/`]);
      check("SINGLE: other listeners keep serving after a listener delete", /^m[123]$/.test(http.body), JSON.stringify(http));
    },
    "single-done": async (info) => {
      const http = await curl([`http://${SINGLE_VIP}/`]);
      check("SINGLE: nothing answers once the last listener is deleted", http.code !== 0, JSON.stringify(http));
      const left = (info.left as string[]).filter((f) => existsSync(f));
      check("SINGLE: the deleted load balancer leaves nothing behind (folders, certificates, stats socket, server states)", left.length === 0, left.join(", "));
    },
    "as-serving": async () => {
      const held = await eventually(async () => (await holdsVip("a", AS_VIP)) !== (await holdsVip("b", AS_VIP)), 10_000);
      const [a, b] = [await holdsVip("a", AS_VIP), await holdsVip("b", AS_VIP)];
      check("ACTIVE_STANDBY: keepalived puts the VIP on exactly one amphora (the MASTER, A)", held && a && !b, `A ${a}, B ${b}`);
      const http = await bodies(`http://${AS_VIP}/`, 4);
      check("ACTIVE_STANDBY: HTTP through the VIP", http.every((x) => x === "m1" || x === "m2") && http.length === 4, http.join(", "));
      const pa = await peerPortBound("a");
      const pb = await peerPortBound("b");
      check("ACTIVE_STANDBY: haproxy listens on the peer port on both amphorae (Octavia's peer names)", pa.includes(`${AMPS.a.vrrp}:${PEER_PORT}`) && pb.includes(`${AMPS.b.vrrp}:${PEER_PORT}`), `A: ${pa} | B: ${pb}`);
      // The SOURCE_IP stick table syncs: the two haproxy peers are connected.
      const linked = await eventually(async () => {
        const r = await run("ss", ["-Htn", "state", "established", `( sport = :${PEER_PORT} or dport = :${PEER_PORT} )`], { netns: lbNs.a, timeoutMs: 5000 });
        return r.stdout.includes(AMPS.b.vrrp);
      }, 10_000);
      check("ACTIVE_STANDBY: the peers are connected (stick tables sync between the amphorae)", linked);
    },
    "as-reloaded": async () => {
      const http = await bodies(`http://${AS_VIP}/`, 2);
      check("ACTIVE_STANDBY: serving after VRRP and haproxy reloads", http.every((x) => x === "m1" || x === "m2"), http.join(", "));
      const pa = await peerPortBound("a");
      const pb = await peerPortBound("b");
      check("ACTIVE_STANDBY: peer port still bound after reload", pa !== "" && pb !== "", `A: ${pa} | B: ${pb}`);
    },
    "as-vrrp-stopped": async () => {
      const gone = await eventually(async () => !(await holdsVip("a", AS_VIP)) && !(await holdsVip("b", AS_VIP)), 10_000);
      check("ACTIVE_STANDBY: stop_vrrp_service removes the VIP from both amphorae", gone);
    },
  };

  /** Runs one phase of controller.py in the controller's namespace, answering its checkpoints. */
  async function phase(name: "single" | "active-standby", specFile: string): Promise<void> {
    const p = new Proc("ip", ["netns", "exec", ns.ctl, PY, join(HERE, "controller.py"), "run", specFile, name], true);
    procs.push(p);
    let buf = "";
    let queue = Promise.resolve();
    const done = new Promise<void>((resolve_, reject) => {
      p.p.stdout!.on("data", (c: Buffer) => {
        buf += c.toString("utf8");
        const lines = buf.split("\n");
        buf = lines.pop()!;
        for (const line of lines) {
          if (!line.startsWith("@@ ")) continue;
          const msg = JSON.parse(line.slice(3)) as Record<string, unknown>;
          if (typeof msg.checkpoint === "string") {
            const cp = msg.checkpoint;
            queue = queue.then(async () => {
              try {
                await checkpoints[cp]!(msg);
              } catch (e) {
                check(`checkpoint ${cp}`, false, (e as Error).stack ?? String(e));
              }
              p.p.stdin!.write("ok\n");
            });
          } else if (typeof msg.call === "string") {
            records.push({ ...(msg as unknown as CallRecord), amphora: `${name}:${String(msg.amphora)}` });
          }
        }
      });
      p.p.once("exit", (code) => (code === 0 ? resolve_() : reject(new Error(`controller.py ${name} exited with ${code}:\n${p.err.slice(-4000)}`))));
    });
    await done;
    await queue;
  }

  before(async () => {
    // Networks.
    ns.sw = await topo.netns();
    for (const k of ["ctl", "client", "member"] as const) ns[k] = await topo.netns();
    for (const k of Object.keys(AMPS) as AmpKey[]) {
      hostNs[k] = await topo.netns();
      lbNs[k] = topo.reserveName();
    }
    for (const br of ["brm", "brv", "brb"]) {
      await topo.sh(ns.sw, "ip", ["link", "add", br, "type", "bridge"]);
      await topo.sh(ns.sw, "ip", ["link", "set", br, "up"]);
    }
    let n = 0;
    const wire = async (nsA: string, ifA: string, br: string, o: { mac?: string; addr?: string; down?: boolean } = {}) => {
      const swIf = `p${n++}`;
      await topo.veth(nsA, ifA, ns.sw, swIf, { macA: o.mac });
      await topo.sh(ns.sw, "ip", ["link", "set", swIf, "master", br, "up"]);
      if (o.down) return;
      await topo.sh(nsA, "ip", ["link", "set", ifA, "up"]);
      if (o.addr) await topo.sh(nsA, "ip", ["addr", "add", o.addr, "dev", ifA]);
    };
    await wire(ns.ctl, "eth0", "brm", { addr: "198.51.100.1/24" });
    await wire(ns.client, "eth0", "brv", { addr: "203.0.113.50/24" });
    await wire(ns.member, "eth0", "brb", { addr: "192.0.2.20/24" });
    for (const [k, a] of Object.entries(AMPS) as [AmpKey, (typeof AMPS)[AmpKey]][]) {
      await wire(hostNs[k], "eth0", "brm", { addr: `${a.mgmt}/24` });
      // Hot-plugged by "Nova": down, unconfigured, known by MAC, under
      // names the agent must not keep (Octavia's agent renames them eth1, eth2).
      await wire(hostNs[k], "ens4", "brv", { mac: a.vipMac, down: true });
      await wire(hostNs[k], "ens5", "brb", { mac: a.memberMac, down: true });
    }

    // Members, and a capture of ARP on the VIP network (the client's view).
    const members = new Proc("ip", ["netns", "exec", ns.member, PY, join(HERE, "members.py"), "192.0.2.20", "8080:m1", "8081:m2", "8082:m3"]);
    procs.push(members);
    await members.waitFor(/ready/, "members");
    garp = new Proc("ip", ["netns", "exec", ns.client, "tcpdump", "-i", "eth0", "-n", "-l", "arp"]);
    procs.push(garp);
    await garp.waitFor(/listening on/, "tcpdump");

    // The controller's view: PKI, certificates, the agents' configs.
    const spec = {
      work, bind_port: BIND_PORT, heartbeat_key: "insecure-test-key",
      hm_initial: "198.51.100.1:5560", hm_update: "198.51.100.1:5561",
      amphorae: Object.fromEntries((Object.keys(AMPS) as AmpKey[]).map((k) => {
        const dir = join(work, `amp-${k}`);
        return [k, {
          id: ids[k], dir, base_path: join(dir, "octavia"), cert_dir: join(dir, "octavia", "certs"),
          lb_network_ip: AMPS[k].mgmt, vrrp_ip: AMPS[k].vrrp, member_ip: AMPS[k].member,
          vip_mac: AMPS[k].vipMac, member_mac: AMPS[k].memberMac, topology: AMPS[k].topology,
        }];
      })),
      single: { lb_id: randomUUID(), vip: SINGLE_VIP },
      active_standby: { lb_id: randomUUID(), vip: AS_VIP, peer_port: PEER_PORT },
      vip_subnet: { cidr: "203.0.113.0/24", gateway: "203.0.113.1" },
      member_subnet: { cidr: "192.0.2.0/24", gateway: "192.0.2.1" },
      members: [{ ip: "192.0.2.20", port: 8080, name: "m1" }, { ip: "192.0.2.20", port: 8081, name: "m2" }, { ip: "192.0.2.20", port: 8082, name: "m3" }],
    };
    for (const a of Object.values(spec.amphorae)) mkdirSync(a.base_path, { recursive: true, mode: 0o700 });
    const specFile = join(work, "spec.json");
    writeFileSync(specFile, JSON.stringify(spec, null, 2));
    const setup = await run(PY, [join(HERE, "controller.py"), "setup", specFile], { timeoutMs: 60_000 });
    assert.equal(setup.exitCode, 0, setup.stderr);

    // The agents, each from its Octavia-rendered amphora-agent.conf (plus
    // the namespace name, see the top of this file), in its amphora's namespace.
    for (const k of Object.keys(AMPS) as AmpKey[]) {
      const conf = join(spec.amphorae[k].dir, "amphora-agent.conf");
      const text = readFileSync(conf, "utf8").replace("[amphora_agent]\n", `[amphora_agent]\namphora_network_namespace = ${lbNs[k]}\n`);
      writeFileSync(conf, text);
      const agent = new Proc("nsenter", [`--net=/run/netns/${hostNs[k]}`, process.execPath, "bin/amphora-agent.js", "--config", conf]);
      procs.push(agent);
      agentLogs[k] = agent;
    }
    await Promise.all((Object.keys(AMPS) as AmpKey[]).map((k) => agentLogs[k]!.waitFor(/agent listening/, `agent ${k}`)));

    // Both load balancers at once: different agents, namespaces and VIPs.
    // A phase that dies is reported as a failed call; the other phase's results still count.
    await Promise.all((["single", "active-standby"] as const).map((name) => phase(name, specFile).catch((e: Error) => {
      records.push({ call: "controller.py ran to the end", amphora: name, ok: false, error: e.message, http: [], ms: 0 });
    })));
  });

  after(async () => {
    for (const p of procs.splice(0).reverse()) await p.stop();
    // OCTAVIA_REPORT=FILE keeps every call (with its HTTP exchanges), check and agent log for reading.
    if (process.env.OCTAVIA_REPORT) {
      writeFileSync(process.env.OCTAVIA_REPORT, JSON.stringify({
        records, checks, agentLogs: Object.fromEntries(Object.entries(agentLogs).map(([k, p]) => [k, p.out + p.err])),
      }, null, 1));
    }
    // haproxy and keepalived outlive their agents by design.
    await killHaproxiesUnder(work);
    killKeepalivedsUnder(work);
    await topo.cleanup();
    rmSync(work, { recursive: true, force: true });
  });

  function calls(name: string, amphora?: string): CallRecord[] {
    const r = records.filter((x) => x.call === name && (amphora === undefined || x.amphora === amphora));
    assert.ok(r.length > 0, `call ${JSON.stringify(name)}${amphora ? ` on ${amphora}` : ""} was not made; made: ${records.map((x) => `${x.amphora} ${x.call}`).join("; ")}`);
    return r;
  }

  function expectOk(name: string, amphora?: string): CallRecord[] {
    const r = calls(name, amphora);
    for (const x of r) assert.ok(x.ok, `${x.amphora} ${x.call}: ${x.error}\n${x.trace ?? ""}\nHTTP: ${JSON.stringify(x.http, null, 1)}`);
    return r;
  }

  const listenersOf = (x: CallRecord) => x.value as { status: string; type: string; uuid: string }[];

  // ---- SINGLE --------------------------------------------------------------
  test("SINGLE version discovery: GET // answers api_version 1.0 (not a 404 that means 0.5)", () => {
    const [r] = expectOk("version discovery (GET //)", "single:s");
    assert.deepEqual(r!.value, { api_version: "1.0" });
    assert.match(r!.http[0]!.url, /:9443\/\/$/);
    assert.equal(expectOk("API version used", "single:s")[0]!.value, "1.0");
  });
  test("SINGLE get_info and get_details", () => {
    const info = expectOk("get_info", "single:s")[0]!.value as Record<string, unknown>;
    assert.equal(info.api_version, "1.0");
    assert.match(String(info.haproxy_version), /^2\.\d+/);
    const details = expectOk("get_details", "single:s")[0]!.value as Record<string, unknown>;
    for (const k of ["hostname", "haproxy_version", "api_version", "networks", "haproxy_count", "cpu", "memory", "disk", "load", "topology", "listeners"]) assert.ok(k in details, k);
    assert.equal(details.topology, "SINGLE");
  });
  test("SINGLE get_interface_from_ip before any plug: None (404), not an error", () => {
    assert.equal(expectOk("get_interface_from_ip before any plug", "single:s")[0]!.value, null);
  });
  test("SINGLE post_vip_plug, post_network_plug, interface of the VIP", () => {
    expectOk("post_vip_plug", "single:s");
    expectOk("post_network_plug", "single:s");
    assert.equal(expectOk("get_interface_from_ip (VIP)", "single:s")[0]!.value, "eth1");
    const plugged = expectOk("post_network_plug", "single:s")[0]!.http[0]!;
    assert.match(plugged.body, /eth2/);
    const details = expectOk("get_details (plugged, serving)", "single:s")[0]!.value as { networks: Record<string, unknown>; haproxy_count: number; listeners: string[] };
    assert.deepEqual(Object.keys(details.networks).sort(), ["eth1", "eth2"]);
    assert.equal(details.haproxy_count, 1);
    assert.equal(details.listeners.length, 3);
  });
  test("SINGLE update_amphora_listeners: certificates (md5 check, upload), crt-list, client CA, CRL, config, reload", () => {
    const [r] = expectOk("update_amphora_listeners (HTTP, TCP, TERMINATED_HTTPS + SNI + client CA + CRL)", "single:s");
    const puts = r!.http.filter((h) => h.method === "PUT").map((h) => new URL(h.url).pathname.replace(/[0-9a-f-]{36}|[0-9a-f]{40}/g, "<id>"));
    assert.ok(puts.includes("/1.0/loadbalancer/<id>/<id>/haproxy"), puts.join(" "));
    assert.ok(puts.filter((p) => p.startsWith("/1.0/loadbalancer/<id>/certificates/")).length >= 5, puts.join(" "));
    assert.ok(puts.includes("/1.0/loadbalancer/<id>/reload"), puts.join(" "));
  });
  test("SINGLE start, listeners ACTIVE", () => {
    expectOk("start", "single:s");
    const l = listenersOf(expectOk("get_all_listeners", "single:s")[0]!);
    assert.deepEqual(l.map((x) => x.status), ["ACTIVE", "ACTIVE", "ACTIVE"]);
    assert.deepEqual(l.map((x) => x.type).sort(), ["HTTP", "TCP", "TERMINATED_HTTPS"]);
  });
  test("SINGLE reload, member add, listener delete", () => {
    expectOk("reload", "single:s");
    expectOk("member add (update_amphora_listeners)", "single:s");
    expectOk("listener delete (TERMINATED_HTTPS)", "single:s");
    assert.deepEqual(listenersOf(expectOk("get_all_listeners after delete", "single:s")[0]!).map((x) => x.type).sort(), ["HTTP", "TCP"]);
  });
  test("SINGLE UDP listener: no IPVS on this kernel, so the agent refuses clearly (409), and the listener deletes", () => {
    const [r] = expectOk("UDP listener (update_amphora_listeners: LVS config upload + reload)", "single:s");
    assert.match(r!.refusal!, /^Conflict/);
    const upload = r!.http.find((h) => h.url.endsWith("/udp_listener"));
    assert.equal(upload?.status, 200, JSON.stringify(r!.http));
    const reload = r!.http.find((h) => h.url.endsWith("/reload"));
    assert.equal(reload?.status, 409);
    assert.match(reload!.body, /IPVS/);
    expectOk("UDP listener delete", "single:s");
  });
  test("SINGLE agent config update; heartbeat decoded and processed by Octavia's health manager", () => {
    expectOk("update_amphora_agent_config", "single:s");
    const hb = expectOk("heartbeat decoded by the health manager (UDPStatusGetter)", "single:s")[0]!.value as Record<string, unknown>;
    assert.equal(hb.id, ids.s);
    assert.equal(hb.ver, 3);
    assert.equal(hb.from, AMPS.s.mgmt);
    assert.equal(Object.keys(hb.listeners as object).length, 2, JSON.stringify(hb));
    // What the health manager makes of it: the amphora is healthy, listeners,
    // pools, members and the load balancer ONLINE (members of the pool
    // without a health monitor NO_MONITOR), statistics taken as deltas.
    const { writes, stats } = expectOk("heartbeat processed by the health manager (UpdateHealthDb, update_stats)", "single:s")[0]!.value as {
      writes: { kind: string; id: string; operating_status?: string; replaced?: boolean }[]; stats: { listener: string; deltas: boolean }[];
    };
    const byKind = (k: string) => writes.filter((w) => w.kind === k).map((w) => w.operating_status ?? (w.replaced ? "replaced" : "?"));
    assert.deepEqual(byKind("amphora_health"), ["replaced"], JSON.stringify(writes));
    assert.deepEqual(byKind("listener"), ["ONLINE", "ONLINE"], JSON.stringify(writes));
    assert.deepEqual(byKind("pool"), ["ONLINE", "ONLINE"], JSON.stringify(writes));
    assert.deepEqual(byKind("member").sort(), ["NO_MONITOR", "ONLINE", "ONLINE", "ONLINE"], JSON.stringify(writes));
    assert.deepEqual(byKind("loadbalancer"), ["ONLINE"], JSON.stringify(writes));
    assert.equal(stats.length, 2);
    assert.ok(stats.every((x) => x.deltas), JSON.stringify(stats));
  });
  test("SINGLE agent certificate rotation (Octavia's certificate generator); calls go on over the new certificate", () => {
    const v = expectOk("upload_cert_amp (agent certificate rotation)", "single:s")[0]!.value as Record<string, string>;
    assert.notEqual(v.serial_before, v.serial_after);
    expectOk("get_info over the rotated certificate", "single:s");
  });
  test("SINGLE delete of the remaining listeners; none left", () => {
    expectOk("listener delete (HTTP)", "single:s");
    expectOk("listener delete (TCP)", "single:s");
    assert.deepEqual(expectOk("get_all_listeners at the end", "single:s")[0]!.value, []);
  });

  // ---- ACTIVE_STANDBY --------------------------------------------------------
  test("ACTIVE_STANDBY version discovery, plugs and VRRP interface on both amphorae", () => {
    for (const k of ["a", "b"]) {
      assert.deepEqual(expectOk("version discovery (GET //)", `active-standby:${k}`)[0]!.value, { api_version: "1.0" });
      expectOk("post_vip_plug", `active-standby:${k}`);
      expectOk("post_network_plug", `active-standby:${k}`);
      assert.equal(expectOk("get_interface_from_ip (VRRP address -> vrrp_interface)", `active-standby:${k}`)[0]!.value, "eth1");
    }
  });
  test("ACTIVE_STANDBY update_vrrp_conf, update_amphora_listeners (peers), start_vrrp_service, start", () => {
    for (const k of ["a", "b"]) {
      expectOk("update_vrrp_conf", `active-standby:${k}`);
      expectOk("update_amphora_listeners (HTTP, peers section)", `active-standby:${k}`);
      expectOk("start_vrrp_service", `active-standby:${k}`);
      expectOk("start", `active-standby:${k}`);
      assert.deepEqual(listenersOf(expectOk("get_all_listeners", `active-standby:${k}`)[0]!).map((x) => x.status), ["ACTIVE"]);
    }
  });
  test("ACTIVE_STANDBY reload_vrrp_service, reload, stop_vrrp_service, last listener delete", () => {
    expectOk("reload_vrrp_service (both)");
    for (const k of ["a", "b"]) expectOk("reload", `active-standby:${k}`);
    expectOk("stop_vrrp_service (both)");
    expectOk("listener delete (last one: the load balancer goes)");
    for (const k of ["a", "b"]) assert.deepEqual(expectOk("get_all_listeners at the end", `active-standby:${k}`)[0]!.value, []);
  });

  // ---- traffic and state seen from outside, at the script's checkpoints ----
  test("traffic through the VIPs and what the client and namespaces see", () => {
    const names = checks.map((c) => c.name);
    for (const want of [
      "SINGLE: HTTP through the VIP reaches both members", "SINGLE: TERMINATED_HTTPS SNI certificate (name verified)",
      "SINGLE: revoked client certificate refused (CRL)", "SINGLE: gratuitous ARP again after reload",
      "SINGLE: server states saved to the config's server-state-file before the reload",
      "SINGLE: the template-rendered config checks without any ALERT (no duplicate user/group)",
      "SINGLE: the added member receives traffic", "SINGLE: nothing answers once the last listener is deleted",
      "ACTIVE_STANDBY: haproxy listens on the peer port on both amphorae (Octavia's peer names)",
      "ACTIVE_STANDBY: the peers are connected (stick tables sync between the amphorae)",
      "SINGLE: the deleted load balancer leaves nothing behind (folders, certificates, stats socket, server states)",
      "ACTIVE_STANDBY: stop_vrrp_service removes the VIP from both amphorae",
    ]) assert.ok(names.includes(want), `check not made: ${want}; made: ${names.join("; ")}`);
    const failed = checks.filter((c) => !c.ok);
    assert.deepEqual(failed, [], failed.map((c) => `${c.name}: ${c.detail}`).join("\n"));
  });

  test("every call the script made succeeded (or was the expected refusal)", () => {
    const failed = records.filter((r) => !r.ok);
    assert.deepEqual(failed.map((r) => `${r.amphora} ${r.call}: ${r.error}`), [],
      failed.map((r) => `${r.amphora} ${r.call}: ${r.error}\n${r.trace ?? ""}\n${JSON.stringify(r.http, null, 1)}`).join("\n\n")
      + "\n--- agent logs (tail) ---\n" + Object.entries(agentLogs).map(([k, p]) => `[${k}] ${p.out.slice(-3000)}`).join("\n"));
  });
});
