// Interface rules: the generated nftables table is loaded in a test
// namespace through the agent, checked with `nft -j list ruleset`, and
// shown to admit and refuse real TCP connections from a peer namespace.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { NetworkService } from "../../src/gen/amphora/v1/network_pb.js";
import { renderRuleset, tableName } from "../../src/network/interface-rules.js";
import { run, runChecked } from "../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
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
  assert.equal(tableName("eth1.100"), "amphora_rules_eth1_100");
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
  async function acceptedPorts(): Promise<number[]> {
    const ports: number[] = [];
    for (const item of await ruleset()) {
      if (item.rule?.table !== tableName("eth1")) continue;
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
});
