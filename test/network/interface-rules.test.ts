// Interface rules: the generated nftables table is loaded in a test
// namespace through the agent, checked with `nft -j list ruleset`, and
// shown to admit and refuse real TCP connections from a peer namespace.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { NetworkService } from "../../src/gen/amphora/v1/network_pb.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { checkRulesTarget, reloadStoredRules, renderRuleset, setRulesForIp, tableName } from "../../src/network/interface-rules.js";
import { interfaceForIp, normalizeIp } from "../../src/network/interfaces.js";
import { run, runChecked } from "../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { RestClient } from "../transport/rest/https-client.js";
import { Topology } from "./netns.js";

test("rendering: one accept line per rule, /0 matches every source, bad input refused", () => {
  const s = renderRuleset("eth1", [
    { protocol: "TCP", cidr: "192.0.2.0/24", port: 80 },
    { protocol: "UDP", port: 53 },
    { protocol: "SCTP", cidr: "0.0.0.0/0", port: 9000 },
    { protocol: "VRRP", cidr: "198.51.100.7/32", port: 0 },
    { protocol: "TCP", cidr: "2001:db8::/64", port: 443 },
  ]);
  assert.match(s, /^ {4}ip saddr 192\.0\.2\.0\/24 tcp dport 80 accept$/m);
  assert.match(s, /^ {4}udp dport 53 accept$/m);
  assert.match(s, /^ {4}sctp dport 9000 accept$/m);
  assert.match(s, /^ {4}ip saddr 198\.51\.100\.7\/32 meta l4proto vrrp accept$/m);
  assert.match(s, /^ {4}ip6 saddr 2001:db8::\/64 tcp dport 443 accept$/m);
  assert.match(s, /delete table inet amphora_rules_eth1\n/);
  assert.throws(() => renderRuleset("eth1", [{ protocol: "TCP", port: 0 }]), /Invalid rules information/);
  assert.throws(() => renderRuleset("eth1", [{ protocol: "ICMP", port: 1 }]), /Invalid rules information/);
  assert.throws(() => renderRuleset("eth1", [{ protocol: "UDP", cidr: "nope", port: 1 }]), /Invalid rules information/);
  assert.throws(() => renderRuleset('eth1"; flush ruleset', []), /Invalid rules information/);
  assert.equal(tableName("eth1"), "amphora_rules_eth1");
  assert.equal(tableName("eth1.100"), "amphora_rules_eth1_2e100");
});

test("table names are injective: eth1.100, eth1-100, eth1_100 and look-alikes get distinct tables", () => {
  const names = ["eth1.100", "eth1-100", "eth1_100", "eth1__100", "eth1_2e100", "eth1_2d100", "eth1@x", "eth1_40x"];
  const tables = names.map(tableName);
  assert.equal(new Set(tables).size, names.length, tables.join(" "));
  for (const t of tables) assert.match(t, /^[A-Za-z0-9_]+$/);
});

test("no rules without a load-balancer namespace: the agent's own interfaces are never firewalled", async () => {
  // Pure check (nothing is looked up or loaded for netns ""), so this test can never touch the host.
  const e = await checkRulesTarget("eth0", "", "0.0.0.0").then(() => assert.fail("expected a refusal"), (x) => x);
  assert.equal(e.kind, "invalid");
  assert.equal(e.message, "Invalid rules information");
  assert.match(e.details, /no load-balancer network namespace/);
});

test("zone-scoped IPv6 addresses are an invalid IP, not a crash", async () => {
  assert.equal(normalizeIp("fe80::1%lo"), "fe80::1%lo");
  const e = await interfaceForIp("fe80::1%lo", "").then(() => assert.fail("expected a refusal"), (x) => x);
  assert.equal(e.kind, "invalid");
  assert.equal(e.message, "Invalid IP address");
});

describe("interface rules in a namespace", () => {
  const topo = new Topology();
  let ns = "";
  let peer = "";
  let agent: TestAgent;

  type NftItem = { rule?: { table: string; expr: unknown[] }; table?: { name: string; family: string } };
  async function ruleset(): Promise<NftItem[]> {
    const r = await runChecked("nft", ["-j", "list", "ruleset"], { netns: ns });
    return (JSON.parse(r.stdout) as { nftables: NftItem[] }).nftables;
  }
  /** The destination ports our table accepts, from nft's own JSON. */
  async function acceptedPorts(table = tableName("eth1")): Promise<number[]> {
    const ports: number[] = [];
    for (const item of await ruleset()) {
      if (item.rule?.table !== table) continue;
      for (const e of item.rule.expr as { match?: { left: { payload?: { field: string; protocol: string } }; right: unknown } }[]) {
        if (e.match?.left.payload?.field === "dport" && e.match.left.payload.protocol !== "udp") ports.push(e.match.right as number);
      }
    }
    return ports.sort((a, b) => a - b);
  }
  /** Connects from the peer namespace; true when the TCP handshake succeeded. */
  async function canConnect(port: number): Promise<boolean> {
    const server = run("socat", ["-T", "3", `TCP-LISTEN:${port},bind=192.0.2.10,reuseaddr`, "SYSTEM:echo hi"], { netns: ns, timeoutMs: 6000 });
    let ok = false;
    for (let i = 0; i < 10 && !ok; i++) {
      const r = await run("socat", ["-T", "1", "-", `TCP:192.0.2.10:${port},connect-timeout=1`], { netns: peer, input: "", timeoutMs: 3000 });
      ok = r.stdout.trim() === "hi";
      // "Connection refused" means the listener was not up yet; a timeout means dropped.
      if (!ok && !/refused/i.test(r.stderr)) break;
      if (!ok) await new Promise((res) => setTimeout(res, 50));
    }
    if (!ok) {
      // Release the listener: a connection from inside its own namespace is not filtered.
      await run("socat", ["-T", "1", "-", `TCP:192.0.2.10:${port},connect-timeout=1`], { netns: ns, input: "", timeoutMs: 3000 });
    }
    await server;
    return ok;
  }

  before(async () => {
    ns = await topo.netns();
    peer = await topo.netns();
    await topo.veth(ns, "eth1", peer, "p1", { up: true });
    await topo.sh(ns, "ip", ["addr", "add", "192.0.2.10/24", "dev", "eth1"]);
    await topo.sh(peer, "ip", ["addr", "add", "192.0.2.1/24", "dev", "p1"]);
    // Names that the old table naming mapped to one table.
    await topo.veth(ns, "v1.100", peer, "q1", { up: true });
    await topo.veth(ns, "v1-100", peer, "q2", { up: true });
    await topo.sh(ns, "ip", ["addr", "add", "198.51.100.10/28", "dev", "v1.100"]);
    await topo.sh(ns, "ip", ["addr", "add", "198.51.100.20/28", "dev", "v1-100"]);
    agent = await startTestAgent({ overrides: { netns: ns } });
  });
  after(async () => {
    await agent?.cleanup();
    await topo.cleanup();
  });

  test("rules are loaded as a table for the interface and admit only what they list", async () => {
    const client = agent.client(NetworkService);
    assert.equal(await canConnect(18081), true, "no rules yet: open");
    const res = await client.setInterfaceRules({
      ip: "192.0.2.10",
      rules: [
        { protocol: "TCP", cidr: "192.0.2.0/24", port: 18081 },
        { protocol: "TCP", port: 18082 },
        { protocol: "VRRP", port: 0 },
      ],
    });
    assert.equal(res.message, "OK");
    assert.deepEqual(await acceptedPorts(), [18081, 18082]);
    const table = (await ruleset()).find((i) => i.table?.name === tableName("eth1"));
    assert.equal(table?.table?.family, "inet");
    assert.equal(await canConnect(18081), true, "listed port admitted");
    assert.equal(await canConnect(18083), false, "unlisted port dropped");
    assert.ok(existsSync(join(agent.stateDir, "network", "rules", "eth1.nft")));
  });

  test("a new rule set replaces the old one entirely; a source prefix is enforced", async () => {
    const client = agent.client(NetworkService);
    await client.setInterfaceRules({ ip: "192.0.2.10", rules: [{ protocol: "TCP", cidr: "203.0.113.0/24", port: 18084 }] });
    assert.deepEqual(await acceptedPorts(), [18084]);
    assert.equal(await canConnect(18084), false, "source 192.0.2.1 is outside 203.0.113.0/24");
    const tables = (await ruleset()).filter((i) => i.table?.name === tableName("eth1"));
    assert.equal(tables.length, 1);
    assert.match(readFileSync(join(agent.stateDir, "network", "rules", "eth1.nft"), "utf8"), /tcp dport 18084 accept/);
  });

  test("concurrent rule sets for one interface leave the kernel with exactly the stored one", async () => {
    const client = agent.client(NetworkService);
    const file = join(agent.stateDir, "network", "rules", "eth1.nft");
    for (let round = 0; round < 10; round++) {
      const ports = Array.from({ length: 12 }, (_, i) => 19000 + round * 100 + i);
      await Promise.all(ports.map((port) => client.setInterfaceRules({ ip: "192.0.2.10", rules: [{ protocol: "TCP", port }] })));
      const stored = [...readFileSync(file, "utf8").matchAll(/tcp dport (\d+) accept/g)].map((m) => Number(m[1]));
      assert.equal(stored.length, 1);
      assert.deepEqual(await acceptedPorts(), stored, `round ${round}: kernel and stored file disagree`);
    }
  });

  test("invalid rules change nothing; an unknown address is not found", async () => {
    const client = agent.client(NetworkService);
    const before = await acceptedPorts();
    let e = ConnectError.from(await client.setInterfaceRules({ ip: "192.0.2.10", rules: [{ protocol: "TCP", port: 0 }] }).catch((x) => x));
    assert.equal(e.code, Code.InvalidArgument);
    assert.equal(e.rawMessage, "Invalid rules information");
    e = ConnectError.from(await client.setInterfaceRules({ ip: "192.0.2.10", rules: [{ protocol: "GRE", port: 1 }] }).catch((x) => x));
    assert.equal(e.code, Code.InvalidArgument);
    assert.deepEqual(await acceptedPorts(), before);
    e = ConnectError.from(await client.setInterfaceRules({ ip: "203.0.113.99", rules: [] }).catch((x) => x));
    assert.equal(e.code, Code.NotFound);
    assert.equal(e.rawMessage, "Error interface not found for IP address");
  });

  test("interfaces whose names differ only in '.', '-' get separate tables", async () => {
    const client = agent.client(NetworkService);
    await client.setInterfaceRules({ ip: "198.51.100.10", rules: [{ protocol: "TCP", port: 18091 }] });
    await client.setInterfaceRules({ ip: "198.51.100.20", rules: [{ protocol: "TCP", port: 18092 }] });
    assert.deepEqual(await acceptedPorts(tableName("v1.100")), [18091]);
    assert.deepEqual(await acceptedPorts(tableName("v1-100")), [18092]);
    assert.ok(existsSync(join(agent.stateDir, "network", "rules", "v1.100.nft")));
    assert.ok(existsSync(join(agent.stateDir, "network", "rules", "v1-100.nft")));
  });

  test("rules for lo, the agent's bind address or a zone-scoped address are refused and load nothing", async () => {
    const client = agent.client(NetworkService);
    const tablesBefore = (await ruleset()).filter((i) => i.table).map((i) => i.table!.name).sort();
    let e = ConnectError.from(await client.setInterfaceRules({ ip: "127.0.0.1", rules: [{ protocol: "TCP", port: 1 }] }).catch((x) => x));
    assert.equal(e.code, Code.InvalidArgument);
    assert.equal(e.rawMessage, "Invalid rules information");
    assert.match(e.findDetails(ErrorInfoSchema)[0]!.details, /loopback interface lo/);
    e = ConnectError.from(await client.setInterfaceRules({ ip: "fe80::1%lo", rules: [] }).catch((x) => x));
    assert.equal(e.code, Code.InvalidArgument);
    assert.equal(e.rawMessage, "Invalid IP address");
    e = ConnectError.from(await client.getInterface({ ip: "fe80::1%eth1" }).catch((x) => x));
    assert.equal(e.code, Code.InvalidArgument);
    // An agent bound to 192.0.2.10 (the domain call: the test agent itself listens on 127.0.0.1).
    const d = await setRulesForIp({ ip: "192.0.2.10", netns: ns, stateDir: agent.stateDir, bindHost: "192.0.2.10", rules: [] })
      .then(() => assert.fail("expected a refusal"), (x) => x);
    assert.equal(d.kind, "invalid");
    assert.equal(d.message, "Invalid rules information");
    assert.match(d.details, /carries the agent's bind address 192\.0\.2\.10/);
    assert.deepEqual((await ruleset()).filter((i) => i.table).map((i) => i.table!.name).sort(), tablesBefore);
    assert.equal(existsSync(join(agent.stateDir, "network", "rules", "lo.nft")), false);
  });

  test("a stored rule file for lo is not loaded at start", async (t) => {
    const dir = mkdtempSync(join(tmpdir(), "amt-rules-"));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    mkdirSync(join(dir, "network", "rules"), { recursive: true });
    writeFileSync(join(dir, "network", "rules", "lo.nft"), renderRuleset("lo", [{ protocol: "TCP", port: 1 }]));
    const r = await reloadStoredRules(ns, dir);
    assert.deepEqual(r.loaded, []);
    assert.equal(r.failures[0]?.ifname, "lo");
    assert.equal((await ruleset()).some((i) => i.table?.name === tableName("lo")), false);
  });

  test("over REST the refusals are 400 with the route's messages", async () => {
    const rest = new RestClient(agent.url, agent, agent.config.amphoraId);
    let r = await rest.request("PUT", "/1.0/interface/127.0.0.1/rules", { json: [{ protocol: "TCP", cidr: null, port: 443 }] });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json<{ message: string }>().message, "Invalid rules information");
    r = await rest.request("PUT", "/1.0/interface/fe80::1%25lo/rules", { json: [] });
    assert.equal(r.status, 400, r.text);
    assert.equal(r.json<{ message: string }>().message, "Invalid IP address");
    r = await rest.request("GET", "/1.0/interface/fe80::1%25lo");
    assert.equal(r.status, 400, r.text);
  });
});
