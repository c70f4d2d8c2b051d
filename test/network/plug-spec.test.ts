// Translation of plug requests into interface state (pure, no namespace).
import { test } from "node:test";
import assert from "node:assert/strict";
import { DomainError } from "../../src/errors.js";
import { parsePrefix, prefixContains } from "../../src/network/cidr.js";
import { planNetwork, planVip } from "../../src/network/plug-spec.js";

const base = { vip: "192.0.2.10", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", vrrpIp: "192.0.2.11", hostRoutes: [], additionalVips: [] };
const isInvalid = (msg: string) => (e: DomainError) => e.kind === "invalid" && e.message === msg;

test("prefixes: containment per family, strict host bits, canonical text", () => {
  assert.equal(parsePrefix("192.0.2.1/24"), undefined);
  assert.equal(parsePrefix("192.0.2.1/24", false)?.text, "192.0.2.0/24");
  assert.equal(parsePrefix("192.0.2.0/33"), undefined);
  const v6 = parsePrefix("2001:DB8:0::/64")!;
  assert.equal(v6.text, "2001:db8::/64");
  assert.ok(prefixContains(v6, "2001:db8::ffff"));
  assert.ok(!prefixContains(v6, "2001:db8:0:1::1"));
  assert.ok(!prefixContains(v6, "192.0.2.1"));
  assert.ok(prefixContains(parsePrefix("::ffff:0:0/96")!, "::ffff:192.0.2.1"));
  assert.ok(prefixContains(parsePrefix("0.0.0.0/0")!, "203.0.113.1"));
});

test("SINGLE: VIP and VRRP address, source routing of the VIP through the interface's table", () => {
  const p = planVip(base, "1002", "SINGLE");
  assert.deepEqual(p.addresses, [{ ip: "192.0.2.11", prefixlen: 24 }, { ip: "192.0.2.10", prefixlen: 24 }]);
  assert.deepEqual(p.rules, [{ family: 4, from: "192.0.2.10/32", table: "1002", priority: 100 }]);
  assert.deepEqual(p.routes.map((r) => `${r.table} ${r.dst}${r.via ? ` via ${r.via}` : ""}`), [
    "1002 192.0.2.0/24", "1002 0.0.0.0/0 via 192.0.2.1", "main 0.0.0.0/0 via 192.0.2.1",
  ]);
});

test("ACTIVE_STANDBY: keepalived owns the VIPs, the plug sets only the VRRP address", () => {
  const p = planVip({ ...base, additionalVips: [{ subnetCidr: "203.0.113.0/24", gateway: "", ipAddress: "203.0.113.10", hostRoutes: [] }] }, "1002", "ACTIVE_STANDBY");
  assert.deepEqual(p.addresses, [{ ip: "192.0.2.11", prefixlen: 24 }]);
  assert.equal(p.rules.length, 2, "rules for both VIPs stay, for when keepalived adds them");
});

test("IPv6 VIPs get /128 rules and ::/0 defaults", () => {
  const p = planVip({ vip: "2001:db8::10", subnetCidr: "2001:db8::/64", gateway: "2001:db8::1", vrrpIp: "", hostRoutes: [], additionalVips: [] }, "1003", "SINGLE");
  assert.deepEqual(p.addresses, [{ ip: "2001:db8::10", prefixlen: 64 }]);
  assert.deepEqual(p.rules, [{ family: 6, from: "2001:db8::10/128", table: "1003", priority: 100 }]);
  assert.ok(p.routes.some((r) => r.dst === "::/0" && r.via === "2001:db8::1" && r.table === "main"));
});

test("bad requests name the reference's messages", () => {
  assert.throws(() => planVip({ ...base, vip: "198.51.100.1" }, "1", "SINGLE"), isInvalid("Invalid VIP"));
  assert.throws(() => planVip({ ...base, vrrpIp: "198.51.100.1" }, "1", "SINGLE"), isInvalid("Invalid VIP"));
  assert.throws(() => planVip({ ...base, subnetCidr: "192.0.2.0/40" }, "1", "SINGLE"), isInvalid("Invalid subnet information"));
  assert.throws(() => planVip({ ...base, gateway: "2001:db8::1" }, "1", "SINGLE"), isInvalid("Invalid subnet information"));
  assert.throws(() => planVip({ ...base, hostRoutes: [{ destination: "2001:db8::/64", nexthop: "192.0.2.1" }] }, "1", "SINGLE"), isInvalid("Invalid subnet information"));
  assert.throws(
    () => planNetwork({ macAddress: "", fixedIps: [{ ipAddress: "192.0.2.5", subnetCidr: "198.51.100.0/24", gateway: "", hostRoutes: [] }] }, "1", "SINGLE"),
    isInvalid("Invalid port information"),
  );
});

test("member port: fixed IPs, host routes in main, source routing only for a fixed IP with a gateway", () => {
  const p = planNetwork({
    macAddress: "", mtu: 1400,
    fixedIps: [
      { ipAddress: "198.51.100.5", subnetCidr: "198.51.100.0/24", gateway: "", hostRoutes: [{ destination: "203.0.113.0/24", nexthop: "198.51.100.1" }] },
      { ipAddress: "192.0.2.5", subnetCidr: "192.0.2.0/24", gateway: "192.0.2.1", hostRoutes: [] },
    ],
  }, "1004", "SINGLE");
  assert.equal(p.mtu, 1400);
  assert.deepEqual(p.addresses, [{ ip: "198.51.100.5", prefixlen: 24 }, { ip: "192.0.2.5", prefixlen: 24 }]);
  assert.deepEqual(p.rules, [{ family: 4, from: "192.0.2.5/32", table: "1004", priority: 100 }]);
  assert.ok(p.routes.some((r) => r.table === "main" && r.dst === "203.0.113.0/24" && r.via === "198.51.100.1"));
  assert.ok(!p.routes.some((r) => r.table === "main" && r.dst === "0.0.0.0/0"), "a member port never takes the main default route");
});

test("member port on the VIP network carries the VIP setup too", () => {
  const p = planNetwork({
    macAddress: "",
    fixedIps: [{ ipAddress: "192.0.2.20", subnetCidr: "192.0.2.0/24", gateway: "", hostRoutes: [] }],
    vipNetInfo: { ...base, macAddress: "" },
  }, "1005", "SINGLE");
  assert.deepEqual(p.addresses.map((a) => a.ip), ["192.0.2.11", "192.0.2.10", "192.0.2.20"]);
  assert.deepEqual(p.rules.map((r) => r.from), ["192.0.2.10/32"]);
});
