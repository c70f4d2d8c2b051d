// Every row of the reference's route table, success and each listed error,
// as raw HTTP requests shaped like the Octavia controller's (node:https,
// client certificate, HTTP/1.1 keep-alive, TLS 1.2 pinned, server
// certificate checked against the amphora id). Two real agents: one whose
// haproxy runs on loopback in this namespace (system, haproxy, certificates,
// agent settings), one whose network namespace is a test namespace built
// from veth pairs (interfaces, rules, plugging, keepalived).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createHash, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { runChecked } from "../../../src/system/exec.js";
import { startTestAgent, type TestAgent } from "../../support/agent.js";
import { freePort, httpGet, killHaproxiesUnder, octaviaConfig, selfSignedPem, type TestPem } from "../../support/haproxy.js";
import { Topology, ipv4Of } from "../../network/netns.js";
import { stopKeepalived, vrrpConfig } from "../../keepalived/support.js";
import { RestClient, type RestResponse } from "./https-client.js";
import { normalizeTemplate, referenceRoutes } from "./reference-routes.js";

const md5 = (s: string) => createHash("md5").update(s).digest("hex");
const VIP_MAC = "02:a5:00:00:01:01";
const MEMBER_MAC = "02:a5:00:00:01:02";

function expectJson(r: RestResponse, status: number, check?: Record<string, unknown> | ((j: Record<string, unknown>) => void)): Record<string, unknown> {
  assert.equal(r.status, status, `status ${r.status}: ${r.text.slice(0, 500)}`);
  assert.match(r.contentType, /^application\/json/);
  const j = r.json<Record<string, unknown>>();
  if (typeof check === "function") check(j);
  // Listed keys must match; our answers may carry more (details, md5, version).
  else if (check) for (const [k, v] of Object.entries(check)) assert.deepEqual(j[k], v, `${k} in ${r.text.slice(0, 300)}`);
  return j;
}

function expectError(r: RestResponse, status: number, message: string, details?: string | RegExp): void {
  expectJson(r, status, (j) => {
    assert.deepEqual(Object.keys(j).sort(), ["details", "message"]);
    assert.equal(j.message, message);
    if (typeof details === "string") assert.equal(j.details, details);
    else if (details) assert.match(String(j.details), details);
  });
}

type Row = { route: string; what: string; todo?: string; run: () => Promise<void> };

describe("every route of the reference, over HTTP/1.1 keep-alive and TLS 1.2", () => {
  const topo = new Topology();
  let A: TestAgent; // haproxy on loopback
  let B: TestAgent; // network namespace = a test namespace
  let a: RestClient;
  let b: RestClient;
  let ns = "";
  let runDir = "";
  let pemDir = "";
  let blocker: Server | undefined;
  const lbId = randomUUID();
  const lb2 = randomUUID();
  let port = 0;
  let config = "";
  let listenerId = "";
  let pemA: TestPem;
  let pemB: TestPem;

  before(async () => {
    runDir = mkdtempSync(join(tmpdir(), "amt-rest-run-"));
    pemDir = mkdtempSync(join(tmpdir(), "amt-rest-pem-"));
    ns = await topo.netns();
    const peer = await topo.netns();
    await topo.veth(ns, "eth1", peer, "p1", { up: true });
    await topo.sh(ns, "ip", ["addr", "add", "198.51.100.5/24", "dev", "eth1"]);
    await topo.veth(ns, "eth2", peer, "p2", { macA: VIP_MAC });
    await topo.veth(ns, "eth3", peer, "p3", { macA: MEMBER_MAC });
    // allSettled: if one start fails, the other agent is still cleaned up by `after`.
    const started = await Promise.allSettled([startTestAgent(), startTestAgent({ overrides: { netns: ns } })]);
    if (started[0].status === "fulfilled") A = started[0].value;
    if (started[1].status === "fulfilled") B = started[1].value;
    for (const s of started) if (s.status === "rejected") throw s.reason;
    a = new RestClient(A.url, A, A.config.amphoraId);
    b = new RestClient(B.url, B, B.config.amphoraId);
    port = await freePort();
    const g = octaviaConfig({ lbId, runDir, listeners: [{ port, returnBody: "hello from haproxy", members: [] }] });
    config = g.text;
    listenerId = g.listeners[0]!.id;
    [pemA, pemB] = await Promise.all([selfSignedPem(pemDir, "a.example"), selfSignedPem(pemDir, "b.example")]);
  });
  after(async () => {
    a?.close();
    b?.close();
    blocker?.close();
    if (A) await killHaproxiesUnder(A.stateDir);
    await stopKeepalived(B);
    await Promise.all([A?.cleanup(), B?.cleanup()]);
    await topo.cleanup();
    for (const d of [runDir, pemDir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  const rows: Row[] = [];
  const row = (route: string, what: string, run: () => Promise<void>, todo?: string) => rows.push({ route, what, run, todo });

  // ---- system ----------------------------------------------------------------
  row("GET /", "api version", async () => {
    const r = await a.request("GET", "/");
    expectJson(r, 200);
    assert.deepEqual(r.json(), { api_version: "1.0" });
  });
  for (const p of ["/info", "/1.0/info"]) {
    row(`GET ${p}`, "host name and versions", async () => {
      expectJson(await a.request("GET", p), 200, (j) => {
        assert.equal(j.api_version, "1.0");
        assert.equal(typeof j.hostname, "string");
        assert.match(String(j.haproxy_version), /^2\.\d+/);
        assert.match(String(j.keepalived_version), /^2\.\d+/);
        assert.equal(j.amphora_id, A.config.amphoraId);
      });
    });
  }
  row("GET /1.0/details", "every listed field, numbers as JSON numbers", async () => {
    expectJson(await a.request("GET", "/1.0/details"), 200, (j) => {
      for (const k of ["hostname", "haproxy_version", "api_version", "networks", "active", "haproxy_count", "cpu_count", "cpu", "memory", "disk", "load", "topology", "topology_status", "listeners", "packages"]) {
        assert.ok(k in j, `missing ${k}`);
      }
      const mem = j.memory as Record<string, unknown>;
      for (const k of ["total", "free", "buffers", "cached", "swap_used", "shared", "slab"]) assert.equal(typeof mem[k], "number", `memory.${k}`);
      assert.ok((mem.total as number) > 0);
      const cpu = j.cpu as Record<string, unknown>;
      for (const k of ["total", "user", "system", "soft_irq"]) assert.equal(typeof cpu[k], "number", `cpu.${k}`);
      const disk = j.disk as Record<string, number>;
      assert.ok(disk.used > 0 && disk.available > 0);
      assert.equal((j.load as number[]).length, 3);
      assert.equal(j.topology, "SINGLE");
      assert.equal(j.topology_status, "OK");
      assert.equal(j.haproxy_count, 0);
      assert.deepEqual(j.packages, {});
    });
  });

  // ---- haproxy configs and lifecycle (agent A) ------------------------------
  row("GET /1.0/listeners", "empty at first", async () => {
    const r = await a.request("GET", "/1.0/listeners");
    expectJson(r, 200);
    assert.deepEqual(r.json(), []);
  });
  row("PUT /1.0/loadbalancer/{amphora_id}/{lb_id}/haproxy", "202 OK with ETag = md5 of the stored config", async () => {
    const r = await a.request("PUT", `/1.0/loadbalancer/${A.config.amphoraId}/${lbId}/haproxy`, { body: config });
    expectJson(r, 202, { message: "OK", md5: md5(config) });
    assert.equal(r.headers.etag, md5(config));
  });
  row("GET /1.0/loadbalancer/{lb_id}/haproxy", "raw config, text/plain, ETag", async () => {
    const r = await a.request("GET", `/1.0/loadbalancer/${lbId}/haproxy`);
    assert.equal(r.status, 200);
    assert.match(r.contentType, /^text\/plain/);
    assert.equal(r.text, config);
    assert.equal(r.headers.etag, md5(config));
  });
  row("PUT /1.0/loadbalancer/{amphora_id}/{lb_id}/haproxy", "400 Invalid request with haproxy's own output; the stored config stays", async () => {
    const bad = config.replace("    maxconn 4096\n", "    maxconn 4096\n    bogus_keyword on\n");
    const r = await a.request("PUT", `/1.0/loadbalancer/${A.config.amphoraId}/${lbId}/haproxy`, { body: bad });
    expectError(r, 400, "Invalid request", /bogus_keyword/);
    assert.equal((await a.request("GET", `/1.0/loadbalancer/${lbId}/haproxy`)).text, config);
  });
  row("PUT /1.0/loadbalancer/{amphora_id}/{lb_id}/haproxy", "400 for a malformed id, with the option's message", async () => {
    const r = await a.request("PUT", `/1.0/loadbalancer/${A.config.amphoraId}/not-a-uuid/haproxy`, { body: config });
    expectError(r, 400, "Invalid request", /lb_id: .*UUID/);
  });
  row("PUT /1.0/loadbalancer/{amphora_id}/{lb_id}/haproxy", "If-Match: a stale ETag is 409, the current one (quoted, weak) is accepted", async () => {
    const path = `/1.0/loadbalancer/${A.config.amphoraId}/${lbId}/haproxy`;
    const next = config.replace("hello from haproxy", "hello again");
    const stale = await a.request("PUT", path, { body: next, headers: { "if-match": `"${md5("something else")}"` } });
    expectJson(stale, 409, (j) => assert.match(String(j.message), /not the expected/));
    assert.equal((await a.request("GET", `/1.0/loadbalancer/${lbId}/haproxy`)).text, config);
    const ok = await a.request("PUT", path, { body: next, headers: { "if-match": `W/"${md5(config)}"` } });
    expectJson(ok, 202, { message: "OK" });
    assert.equal(ok.headers.etag, md5(next));
    config = next;
  });
  row("GET /1.0/loadbalancer/{lb_id}/haproxy", "404 Loadbalancer Not Found", async () => {
    expectError(await a.request("GET", `/1.0/loadbalancer/${randomUUID()}/haproxy`), 404, "Loadbalancer Not Found");
  });
  row("PUT /1.0/loadbalancer/{object_id}/{action}", "start: 202 OK and traffic flows", async () => {
    expectJson(await a.request("PUT", `/1.0/loadbalancer/${lbId}/start`), 202, (j) => {
      assert.equal(j.message, "OK");
      assert.equal(typeof j.details, "string");
    });
    assert.equal((await httpGet(port)).body, "hello again");
  });
  row("GET /1.0/listeners", "ACTIVE with uuid and type", async () => {
    const r = await a.request("GET", "/1.0/listeners");
    expectJson(r, 200);
    const l = r.json<Record<string, unknown>[]>();
    assert.equal(l.length, 1);
    assert.deepEqual({ status: l[0]!.status, uuid: l[0]!.uuid, type: l[0]!.type }, { status: "ACTIVE", uuid: listenerId, type: "HTTP" });
  });
  row("PUT /1.0/loadbalancer/{object_id}/{action}", "reload: 202 OK", async () => {
    expectJson(await a.request("PUT", `/1.0/loadbalancer/${lbId}/reload`), 202, { message: "OK" });
    assert.equal((await httpGet(port)).body, "hello again");
  });
  row("PUT /1.0/loadbalancer/{object_id}/{action}", "If-Match: reload only the config version the caller saw (409 otherwise)", async () => {
    const stale = await a.request("PUT", `/1.0/loadbalancer/${lbId}/reload`, { headers: { "if-match": md5("an older config") } });
    expectJson(stale, 409, (j) => assert.match(String(j.message), /not the expected/));
    expectJson(await a.request("PUT", `/1.0/loadbalancer/${lbId}/reload`, { headers: { "if-match": `"${md5(config)}"` } }), 202, { message: "OK" });
    expectError(await a.request("PUT", `/1.0/loadbalancer/${lbId}/reload`, { headers: { "if-match": "v1" } }), 400, "Invalid Request", /expected_md5/);
  });
  row("PUT /1.0/loadbalancer/{object_id}/{action}", "400 Invalid Request: Unknown action", async () => {
    expectError(await a.request("PUT", `/1.0/loadbalancer/${lbId}/explode`), 400, "Invalid Request", "Unknown action: explode");
  });
  row("PUT /1.0/loadbalancer/{object_id}/{action}", "404 Loadbalancer Not Found", async () => {
    expectError(await a.request("PUT", `/1.0/loadbalancer/${randomUUID()}/start`), 404, "Loadbalancer Not Found");
  });
  row("PUT /1.0/loadbalancer/{object_id}/{action}", "500 Error starting haproxy, with haproxy's output", async () => {
    // haproxy -c does not bind, so the config is stored; the start cannot bind.
    blocker = createServer();
    const busy = await freePort();
    await new Promise<void>((res) => blocker!.listen(busy, "127.0.0.1", () => res()));
    const g = octaviaConfig({ lbId: lb2, runDir, listeners: [{ port: busy, returnBody: "never", members: [] }] });
    expectJson(await a.request("PUT", `/1.0/loadbalancer/${A.config.amphoraId}/${lb2}/haproxy`, { body: g.text }), 202);
    expectError(await a.request("PUT", `/1.0/loadbalancer/${lb2}/start`), 500, "Error starting haproxy", /bind|Address already in use/i);
    expectJson(await a.request("DELETE", `/1.0/listeners/${lb2}`), 200, { message: "OK" });
  });
  row("PUT /1.0/loadbalancer/{object_id}/{action}", "stop: 202 OK, listener STOPPED", async () => {
    expectJson(await a.request("PUT", `/1.0/loadbalancer/${lbId}/stop`), 202, { message: "OK" });
    const l = (await a.request("GET", "/1.0/listeners")).json<{ status: string }[]>();
    assert.deepEqual(l.map((x) => x.status), ["STOPPED"]);
  });
  row("DELETE /1.0/listeners/{object_id}", "200 OK, idempotent, config gone", async () => {
    await a.request("PUT", `/1.0/loadbalancer/${lbId}/start`);
    expectJson(await a.request("DELETE", `/1.0/listeners/${lbId}`), 200, { message: "OK" });
    expectJson(await a.request("DELETE", `/1.0/listeners/${lbId}`), 200, { message: "OK" });
    expectError(await a.request("GET", `/1.0/loadbalancer/${lbId}/haproxy`), 404, "Loadbalancer Not Found");
    await assert.rejects(httpGet(port, "/", "127.0.0.1", 500));
    assert.deepEqual((await a.request("GET", "/1.0/listeners")).json(), []);
  });
  row("DELETE /1.0/listeners/{object_id}", "400 for a malformed id", async () => {
    expectError(await a.request("DELETE", "/1.0/listeners/nope"), 400, "Invalid request", /UUID/);
  });

  // ---- certificates (agent A) -------------------------------------------------
  const certPath = (name: string) => `/1.0/loadbalancer/${lbId}/certificates/${name}`;
  row("PUT /1.0/loadbalancer/{lb_id}/certificates/{filename}.pem", "200 OK with ETag = md5", async () => {
    const r = await a.request("PUT", certPath("listener-1.pem"), { body: pemA.bundle });
    expectJson(r, 200, { message: "OK", md5sum: md5(pemA.bundle) });
    assert.equal(r.headers.etag, md5(pemA.bundle));
  });
  row("PUT /1.0/loadbalancer/{lb_id}/certificates/{filename}.pem", "400 No certificate found / No RSA key found / do not match / bad name", async () => {
    expectError(await a.request("PUT", certPath("x.pem"), { body: pemA.key }), 400, "No certificate found");
    expectError(await a.request("PUT", certPath("x.pem"), { body: pemA.cert }), 400, "No RSA key found");
    expectError(await a.request("PUT", certPath("x.pem"), { body: pemA.key + pemB.cert }), 400, "Certificate and key do not match");
    expectError(await a.request("PUT", certPath("x.txt"), { body: pemA.bundle }), 400, "Invalid request", /filename/);
    expectError(await a.request("PUT", certPath("..%2F..%2Fescape.pem"), { body: pemA.bundle }), 400, "Invalid request", /filename/);
    expectError(await a.request("PUT", certPath("empty.pem"), { body: "" }), 400, "Invalid request", /pem/);
    expectError(await a.request("GET", certPath("x.pem")), 404, "Certificate Not Found");
  });
  row("GET /1.0/loadbalancer/{lb_id}/certificates/{filename}.pem", "200 md5sum only, never the PEM", async () => {
    const r = await a.request("GET", certPath("listener-1.pem"));
    expectJson(r, 200);
    assert.deepEqual(r.json(), { md5sum: md5(pemA.bundle) });
  });
  row("GET /1.0/loadbalancer/{lb_id}/certificates/{filename}.pem", "404 Certificate Not Found", async () => {
    expectError(await a.request("GET", certPath("missing.pem")), 404, "Certificate Not Found");
  });
  row("DELETE /1.0/loadbalancer/{lb_id}/certificates/{filename}.pem", "200 OK, then 404", async () => {
    expectJson(await a.request("DELETE", certPath("listener-1.pem")), 200, { message: "OK" });
    expectError(await a.request("GET", certPath("listener-1.pem")), 404, "Certificate Not Found");
    expectError(await a.request("DELETE", certPath("listener-1.pem")), 404, "Certificate Not Found");
  });

  // ---- the agent's own settings (agent A) ------------------------------------
  row("PUT /1.0/config", "202 OK; a mutable option takes effect at once", async () => {
    const r = await a.request("PUT", "/1.0/config", { body: "[health_manager]\nheartbeat_interval = 7\n" });
    expectJson(r, 202, { message: "OK" });
    assert.equal(A.ctx.config.current.heartbeatIntervalS, 7);
  });
  row("PUT /1.0/config", "a malformed file is refused with the reference's message and changes nothing", async () => {
    const r = await a.request("PUT", "/1.0/config", { body: "[health_manager]\nheartbeat_interval = often\n" });
    assert.ok(r.status >= 400, `status ${r.status}`);
    expectError(r, r.status, "Unable to update amphora-agent configuration.", /heartbeat_interval/);
    assert.equal(A.ctx.config.current.heartbeatIntervalS, 7);
  });
  row("PUT /1.0/config", "a malformed file answers 500 as the reference lists", async () => {
    const r = await a.request("PUT", "/1.0/config", { body: "[health_manager]\nheartbeat_interval = often\n" });
    expectError(r, 500, "Unable to update amphora-agent configuration.");
    // So do an empty body (a validation rule) and one that is not UTF-8 text (refused by the REST layer).
    expectError(await a.request("PUT", "/1.0/config", { body: "" }), 500, "Unable to update amphora-agent configuration.", /config/);
    expectError(await a.request("PUT", "/1.0/config", { body: Buffer.from([0x5b, 0xff, 0xfe, 0x5d]) }), 500, "Unable to update amphora-agent configuration.", /UTF-8/);
    assert.equal(A.ctx.config.current.heartbeatIntervalS, 7);
  });
  row("PUT /1.0/certificate", "202 OK; new connections are served with it", async () => {
    const bundle = readFileSync(A.pki!.serverBundle, "utf8");
    expectJson(await a.request("PUT", "/1.0/certificate", { body: bundle }), 202, { message: "OK" });
    const fresh = new RestClient(A.url, A, A.config.amphoraId);
    assert.equal((await fresh.request("GET", "/")).status, 200);
    fresh.close();
  });
  row("PUT /1.0/certificate", "400 as for certificates", async () => {
    expectError(await a.request("PUT", "/1.0/certificate", { body: pemA.key }), 400, "No certificate found");
    expectError(await a.request("PUT", "/1.0/certificate", { body: pemA.key + pemB.cert }), 400, "Certificate and key do not match");
  });

  // ---- interfaces and rules (agent B, test namespace) -----------------------
  row("GET /1.0/interface/{ip}", "200 OK with the interface", async () => {
    const r = await b.request("GET", "/1.0/interface/198.51.100.5");
    expectJson(r, 200);
    assert.deepEqual(r.json(), { message: "OK", interface: "eth1" });
  });
  row("GET /1.0/interface/{ip}", "400 Invalid IP address", async () => {
    expectError(await b.request("GET", "/1.0/interface/198.51.100.300"), 400, "Invalid IP address", /ip/);
  });
  row("GET /1.0/interface/{ip}", "404 Error interface not found for IP address", async () => {
    expectError(await b.request("GET", "/1.0/interface/203.0.113.99"), 404, "Error interface not found for IP address");
  });
  row("PUT /1.0/interface/{ip}/rules", "200 OK; nftables rules loaded for that interface", async () => {
    const rules = [{ protocol: "TCP", cidr: null, port: 443 }, { protocol: "UDP", cidr: "198.51.100.0/24", port: 53 }, { protocol: "VRRP", cidr: null, port: 112 }];
    expectJson(await b.request("PUT", "/1.0/interface/198.51.100.5/rules", { json: rules }), 200, { message: "OK" });
    const nft = (await runChecked("nft", ["list", "ruleset"], { netns: ns })).stdout;
    assert.match(nft, /tcp dport 443 accept/);
    assert.match(nft, /ip saddr 198\.51\.100\.0\/24 udp dport 53 accept/);
  });
  row("PUT /1.0/interface/{ip}/rules", "400 Invalid rules information", async () => {
    const path = "/1.0/interface/198.51.100.5/rules";
    expectError(await b.request("PUT", path, { json: [{ protocol: "ICMP", cidr: null, port: 1 }] }), 400, "Invalid rules information", /protocol/);
    expectError(await b.request("PUT", path, { json: [{ protocol: "TCP", cidr: "nope", port: 80 }] }), 400, "Invalid rules information", /cidr/);
    expectError(await b.request("PUT", path, { json: { protocol: "TCP" } }), 400, "Invalid rules information", /JSON array/);
    expectError(await b.request("PUT", path, { body: "[{" }), 400, "Invalid rules information", /not valid JSON/);
    expectError(await b.request("PUT", path, { json: [{ protocol: "TCP", port: "eighty" }] }), 400, "Invalid rules information");
  });
  row("PUT /1.0/interface/{ip}/rules", "404 for an address on no interface", async () => {
    expectError(await b.request("PUT", "/1.0/interface/203.0.113.99/rules", { json: [] }), 404, "Error interface not found for IP address");
  });

  // ---- plugging (agent B) ----------------------------------------------------
  const vipBody = (o: Record<string, unknown> = {}) => ({
    subnet_cidr: "192.0.2.0/24", gateway: "192.0.2.1", mac_address: VIP_MAC, mtu: 1450, vrrp_ip: null,
    host_routes: [], additional_vips: [], is_sriov: false, some_field_a_newer_controller_sends: "ignored", ...o,
  });
  row("POST /1.0/plug/vip/{vip}", "400 Invalid VIP / Invalid subnet information", async () => {
    expectError(await b.request("POST", "/1.0/plug/vip/192.0.2.300", { json: vipBody() }), 400, "Invalid VIP", /vip/);
    expectError(await b.request("POST", "/1.0/plug/vip/203.0.113.10", { json: vipBody() }), 400, "Invalid VIP", /not inside subnet/);
    expectError(await b.request("POST", "/1.0/plug/vip/192.0.2.10", { json: vipBody({ gateway: "2001:db8::1" }) }), 400, "Invalid subnet information");
    expectError(await b.request("POST", "/1.0/plug/vip/192.0.2.10", { body: "not json" }), 400, "Invalid VIP", /not valid JSON/);
  });
  row("POST /1.0/plug/vip/{vip}", "404 No suitable network interface found", async () => {
    expectError(await b.request("POST", "/1.0/plug/vip/192.0.2.10", { json: vipBody({ mac_address: "02:a5:00:00:01:99" }) }), 404, "No suitable network interface found");
  });
  // The controller retries a 404 only when "No suitable network interface
  // found" is in "details" (a hot-plugged NIC may not have appeared yet).
  row("POST /1.0/plug/vip/{vip}", "the 404's details carry the phrase the controller retries on", async () => {
    const vip = await b.request("POST", "/1.0/plug/vip/192.0.2.10", { json: vipBody({ mac_address: "02:a5:00:00:01:99" }) });
    expectJson(vip, 404, (j) => assert.match(String(j.details), /No suitable network interface found/));
    const net = await b.request("POST", "/1.0/plug/network", { json: netBody({ mac_address: "02:a5:00:00:01:98" }) });
    expectJson(net, 404, (j) => assert.match(String(j.details), /No suitable network interface found/));
  });
  row("POST /1.0/plug/vip/{vip}", "500 Error plugging VIP (and nothing left behind)", async () => {
    const r = await b.request("POST", "/1.0/plug/vip/192.0.2.10", { json: vipBody({ host_routes: [{ destination: "203.0.113.0/24", nexthop: "255.255.255.255" }] }) });
    expectError(r, 500, "Error plugging VIP");
    assert.deepEqual(await ipv4Of(topo, ns, "eth2"), []);
  });
  row("POST /1.0/plug/vip/{vip}", "202 OK, VIP on the interface with that MAC", async () => {
    const r = await b.request("POST", "/1.0/plug/vip/192.0.2.10", { json: vipBody() });
    expectJson(r, 202, { message: "OK", details: "VIP 192.0.2.10 plugged on interface eth2" });
    assert.deepEqual(await ipv4Of(topo, ns, "eth2"), ["192.0.2.10/24"]);
  });
  const netBody = (o: Record<string, unknown> = {}) => ({
    mac_address: MEMBER_MAC, fixed_ips: [{ ip_address: "203.0.113.7", subnet_cidr: "203.0.113.0/24", host_routes: [] }], mtu: 1400, ...o,
  });
  row("POST /1.0/plug/network", "400 Invalid port information", async () => {
    const bad = netBody({ fixed_ips: [{ ip_address: "198.51.100.77", subnet_cidr: "203.0.113.0/24", host_routes: [] }] });
    expectError(await b.request("POST", "/1.0/plug/network", { json: bad }), 400, "Invalid port information", /not inside subnet/);
    expectError(await b.request("POST", "/1.0/plug/network", { json: netBody({ mac_address: "nope" }) }), 400, "Invalid port information", /mac_address/);
  });
  row("POST /1.0/plug/network", "404 for an unknown MAC", async () => {
    expectError(await b.request("POST", "/1.0/plug/network", { json: netBody({ mac_address: "02:a5:00:00:01:98" }) }), 404, "No suitable network interface found");
  });
  row("POST /1.0/plug/network", "500 when the kernel refuses a step", async () => {
    const bad = netBody({ fixed_ips: [{ ip_address: "203.0.113.7", subnet_cidr: "203.0.113.0/24", host_routes: [{ destination: "192.0.2.128/25", nexthop: "255.255.255.255" }] }] });
    expectJson(await b.request("POST", "/1.0/plug/network", { json: bad }), 500, (j) => assert.match(String(j.message), /plug|Error/i));
    assert.deepEqual(await ipv4Of(topo, ns, "eth3"), []);
  });
  row("POST /1.0/plug/network", "202 OK, Plugged interface", async () => {
    expectJson(await b.request("POST", "/1.0/plug/network", { json: netBody() }), 202, { message: "OK", details: "Plugged interface eth3" });
    assert.deepEqual(await ipv4Of(topo, ns, "eth3"), ["203.0.113.7/24"]);
  });

  // ---- keepalived (agent B) --------------------------------------------------
  const vrrp = vrrpConfig({ routerId: "amt_rest", state: "MASTER", priority: 100, iface: "eth1", src: "198.51.100.5", peer: "198.51.100.6", vips: ["198.51.100.10/32"] });
  row("PUT /1.0/vrrp/{action}", "500 with the reason before any configuration", async () => {
    expectError(await b.request("PUT", "/1.0/vrrp/start"), 500, "Failed to start keepalived", /no keepalived configuration/);
  });
  row("PUT /1.0/vrrp/upload", "500 Failed to upload keepalived configuration.", async () => {
    expectError(await b.request("PUT", "/1.0/vrrp/upload", { body: "vrrp_instance x {\n  stateX MASTER\n}\n" }), 500, "Failed to upload keepalived configuration.", /stateX/);
  });
  row("PUT /1.0/vrrp/upload", "200 OK", async () => {
    expectJson(await b.request("PUT", "/1.0/vrrp/upload", { body: vrrp }), 200, { message: "OK" });
  });
  row("PUT /1.0/vrrp/{action}", "start, reload, stop: 202 OK keepalived <action>ed", async () => {
    expectJson(await b.request("PUT", "/1.0/vrrp/start"), 202, { message: "OK", details: "keepalived started" });
    expectJson(await b.request("PUT", "/1.0/vrrp/reload"), 202, { message: "OK", details: "keepalived reloaded" });
    expectJson(await b.request("PUT", "/1.0/vrrp/stop"), 202, { message: "OK", details: "keepalived stopped" });
  });
  row("PUT /1.0/vrrp/{action}", "400 Invalid Request", async () => {
    expectError(await b.request("PUT", "/1.0/vrrp/restartify"), 400, "Invalid Request", "Unknown action: restartify");
  });

  // ---- UDP listeners (agent B) -----------------------------------------------
  const udpListener = randomUUID();
  const lvs = `# Configuration for Listener ${udpListener}\n\nvirtual_server 203.0.113.5 53 {\n    lb_algo rr\n    lb_kind NAT\n    protocol UDP\n\n    real_server 198.51.100.2 53 {\n        weight 1\n    }\n}\n`;
  row("PUT /1.0/listeners/{amphora_id}/{listener_id}/udp_listener", "200 OK", async () => {
    expectJson(await b.request("PUT", `/1.0/listeners/${B.config.amphoraId}/${udpListener}/udp_listener`, { body: lvs }), 200, { message: "OK" });
  });
  row("PUT /1.0/listeners/{amphora_id}/{listener_id}/udp_listener", "400 invalid config", async () => {
    const r = await b.request("PUT", `/1.0/listeners/${B.config.amphoraId}/${udpListener}/udp_listener`, { body: "virtual_server 203.0.113.5 53 {\n  weightz 3\n}\n" });
    expectError(r, 400, "Invalid request", /weightz/);
  });
  row("GET /1.0/listeners/{listener_id}/udp_listener", "200 raw config as uploaded", async () => {
    const r = await b.request("GET", `/1.0/listeners/${udpListener}/udp_listener`);
    assert.equal(r.status, 200);
    assert.match(r.contentType, /^text\/plain/);
    assert.equal(r.text, lvs);
  });
  row("GET /1.0/listeners/{listener_id}/udp_listener", "404", async () => {
    expectJson(await b.request("GET", `/1.0/listeners/${randomUUID()}/udp_listener`), 404);
  });

  for (const r of rows) test(`${r.route}: ${r.what}`, r.todo ? { todo: r.todo } : {}, r.run);

  test("the rows cover every route of the reference, and each client kept one connection", () => {
    const covered = new Set(rows.map((r) => normalizeTemplate(r.route)));
    assert.deepEqual([...new Set(referenceRoutes())].filter((r) => !covered.has(r)), []);
    assert.equal(a.connections, 1);
    assert.equal(b.connections, 1);
  });
});
