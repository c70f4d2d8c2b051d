// The config comparison that decides runtime apply vs reload (no haproxy):
// each kind of change both ways, and the state-file rewrite.
import { test } from "node:test";
import assert from "node:assert/strict";
import { diffConfigs, parseConfigModel, whyValidationNeeded, words, type ConfigDiff } from "../../src/haproxy/config-model.js";
import { rewriteServerState } from "../../src/haproxy/server-state-rewrite.js";

const BE = "backend pool-1:listener-1";
function cfg(servers: string[], o: { balance?: string; extra?: string[]; timeout?: string; defaults?: string[] } = {}): string {
  return [
    "# Configuration for loadbalancer 1",
    "global",
    "    daemon",
    "    maxconn 4096",
    "",
    "defaults",
    `    timeout client ${o.timeout ?? "50s"}`,
    ...(o.defaults ?? []),
    "",
    "frontend listener-1",
    "    bind 192.0.2.10:80",
    "    default_backend pool-1:listener-1",
    "",
    BE,
    "    mode http",
    `    balance ${o.balance ?? "roundrobin"}`,
    ...(o.extra ?? []),
    ...servers.map((s) => `    ${s}`),
    "",
  ].join("\n");
}
const A = "server a 192.0.2.1:80 weight 1 check inter 5s fall 3 rise 2";
const B = "server b 192.0.2.2:80 weight 1 check inter 5s fall 3 rise 2";
const diff = (x: string, y: string): ConfigDiff => diffConfigs(parseConfigModel(x), parseConfigModel(y));
const reason = (d: ConfigDiff) => (d.kind === "reload" ? d.reason : `not a reload: ${d.kind}`);

test("words: blanks, quotes, escapes, comments", () => {
  assert.deepEqual(words("  http-request return  string \"a  b\" # note"), ["http-request", "return", "string", "\"a  b\""]);
  assert.deepEqual(words("acl x path_beg /a\\ b"), ["acl", "x", "path_beg", "/a\\ b"]);
  assert.deepEqual(words("# only a comment"), []);
});

test("same config modulo comments, blank lines and spacing: nothing to do", () => {
  const x = cfg([A, B]);
  const y = x.replace("# Configuration for loadbalancer 1", "# another comment").replace("    maxconn 4096", "\tmaxconn   4096  # max").replace(/\n\n/g, "\n\n\n");
  assert.deepEqual(diff(x, y), { kind: "same" });
});

test("weight, disabled, address and port changes are runtime changes; the other way too", () => {
  const cases: [string, string][] = [
    [A, A.replace("weight 1", "weight 7")],
    [A, `${A} disabled`],
    [A, A.replace("192.0.2.1:80", "192.0.2.9:8080")],
    [A, A.replace("weight 1", "weight 0")],
  ];
  for (const [from, to] of cases) {
    for (const [x, y] of [[from, to], [to, from]] as const) {
      const d = diff(cfg([x, B]), cfg([y, B]));
      assert.equal(d.kind, "runtime", `${x} -> ${y}: ${reason(d)}`);
      assert.equal(d.kind === "runtime" && d.changes.length, 1);
      assert.equal(d.kind === "runtime" && d.changes[0]!.kind, "set");
    }
  }
});

test("adding and removing a server are runtime changes in a dynamic backend", () => {
  const add = diff(cfg([A]), cfg([A, B]));
  assert.equal(add.kind, "runtime");
  assert.deepEqual(add.kind === "runtime" && add.changes.map((c) => [c.kind, c.backend, c.kind === "set" ? c.to.name : c.server.name]), [["add", "pool-1:listener-1", "b"]]);
  const server = add.kind === "runtime" && add.changes[0]!.kind === "add" ? add.changes[0].server : undefined;
  assert.equal(server?.check, true);
  assert.deepEqual(server?.options, ["check", "inter 5s", "fall 3", "rise 2"]);
  const del = diff(cfg([A, B]), cfg([A]));
  assert.deepEqual(del.kind === "runtime" && del.changes.map((c) => c.kind), ["del"]);
  // Several at once, also in other algorithms that are dynamic.
  for (const balance of ["leastconn", "source\n    hash-type consistent", "random", "first"]) {
    const d = diff(cfg([A], { balance }), cfg([A.replace("weight 1", "weight 3"), B], { balance }));
    assert.deepEqual(d.kind === "runtime" && d.changes.map((c) => c.kind), ["set", "add"], balance);
  }
});

test("everything else needs a reload, with the first difference as the reason", () => {
  assert.match(reason(diff(cfg([A]), cfg([A], { timeout: "60s" }))), /defaults: "timeout client 50s" became "timeout client 60s"/);
  assert.match(reason(diff(cfg([A]), cfg([A], { extra: ["acl bad path_beg /x"] }))), /pool-1:listener-1: "acl bad path_beg \/x" added/);
  assert.match(reason(diff(cfg([A]), cfg([A]) + "backend other\n    server x 192.0.2.3:80\n")), /section "backend other" added/);
  assert.match(reason(diff(cfg([A]) + "peers p\n    peer a 127.0.0.1:1\n", cfg([A]) + "peers p\n    peer a 127.0.0.1:2\n")), /peers p: "peer a 127.0.0.1:1" became/);
  // Another keyword of an existing server.
  assert.match(reason(diff(cfg([A]), cfg([A.replace("inter 5s", "inter 6s")]))), /server a: "check inter 5s fall 3 rise 2" became "check inter 6s/);
  assert.match(reason(diff(cfg([A]), cfg([`${A} backup`]))), /server a:/);
  // A keyword `add server` refuses (session persistence cookie).
  assert.match(reason(diff(cfg([A]), cfg([A, `${B} cookie b`]))), /server b added with keyword "cookie", which "add server" does not take/);
  // Static algorithms: no weight change, no add or remove (haproxy refuses them).
  assert.match(reason(diff(cfg([A], { balance: "source" }), cfg([A, B], { balance: "source" }))), /algorithm source \(hash-type map-based\) is static/);
  assert.match(reason(diff(cfg([A, B], { balance: "static-rr" }), cfg([A], { balance: "static-rr" }))), /removed, and the algorithm static-rr is static/);
  assert.match(reason(diff(cfg([A], { balance: "source" }), cfg([A.replace("weight 1", "weight 2")], { balance: "source" }))), /weight 1 became 2/);
  // ... but an admin state change works there too.
  assert.equal(diff(cfg([A], { balance: "source" }), cfg([`${A} disabled`], { balance: "source" })).kind, "runtime");
  // Names instead of addresses, another address family.
  assert.match(reason(diff(cfg([A]), cfg([A.replace("192.0.2.1:80", "backend.example:80")]))), /only IP addresses/);
  assert.match(reason(diff(cfg([A]), cfg([A.replace("192.0.2.1:80", "2001:db8::1:80")]))), /another address family/);
  // default-server lines do not apply to servers added at runtime.
  assert.match(reason(diff(cfg([A], { defaults: ["    default-server inter 3s"] }), cfg([A, B], { defaults: ["    default-server inter 3s"] }))), /default-server/);
  // The balance inherited from defaults counts.
  const dflt = { balance: "", defaults: ["    balance source"] };
  const x = cfg([A], dflt).replace("    balance \n", "");
  assert.match(reason(diff(x, cfg([A, B], dflt).replace("    balance \n", ""))), /static/);
});

test("IPv6 servers: address changes within the family are runtime changes", () => {
  const v6 = "server a 2001:db8::1:80 weight 1";
  const d = diff(cfg([v6]), cfg([v6.replace("2001:db8::1:80", "2001:db8::2:443")]));
  assert.equal(d.kind, "runtime");
  const c = d.kind === "runtime" ? d.changes[0]! : undefined;
  assert.equal(c?.kind === "set" && `${c.to.ip} ${c.to.port}`, "2001:db8::2 443");
});

test("the parser is linear: a config of 100,000 servers parses and compares quickly", () => {
  const many = Array.from({ length: 100_000 }, (_, i) => `server s${i} 192.0.2.${i % 250 + 1}:${1000 + (i % 5000)} weight 1`);
  const x = cfg(many);
  const y = cfg(many.map((s, i) => (i % 1000 === 0 ? s.replace("weight 1", "weight 2") : s)));
  const t0 = performance.now();
  const d = diff(x, y);
  const ms = performance.now() - t0;
  assert.equal(d.kind === "runtime" && d.changes.length, 100);
  // Quadratic work would take minutes here; a loaded 2-core machine does this in a few seconds.
  assert.ok(ms < 30_000, `${ms} ms`);
});

test("server-state rewrite: config-owned fields follow the new config, other states are kept", () => {
  const served = parseConfigModel(cfg([A, B, "server c 192.0.2.3:80 weight 2"]));
  const next = parseConfigModel(cfg([A.replace("weight 1", "weight 1"), `${B} disabled`, "server c 192.0.2.3:80 weight 2"]));
  const head = "1\n# be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state srv_uweight srv_iweight srv_time_since_last_change srv_check_status srv_check_result srv_check_health srv_check_state srv_agent_state bk_f_forced_id srv_f_forced_id srv_fqdn srv_port srvrecord srv_use_ssl srv_check_port srv_check_addr srv_agent_addr srv_agent_port\n";
  const state = head + [
    // a: weight 1 set at runtime (initial weight 5 from an older config), up.
    "2 pool-1:listener-1 1 a 192.0.2.1 2 0 1 5 10 15 3 4 6 0 0 0 - 80 - 0 0 - - 0",
    // b: matches the served config.
    "2 pool-1:listener-1 2 b 192.0.2.2 0 0 1 1 10 8 2 0 6 0 0 0 - 80 - 0 0 - - 0",
    // c: an operator put it in maintenance (the served config says enabled).
    "2 pool-1:listener-1 3 c 192.0.2.3 0 1 2 2 10 8 2 0 6 0 0 0 - 80 - 0 0 - - 0",
    // gone from the new config.
    "2 pool-1:listener-1 4 d 192.0.2.4 2 0 1 1 10 8 2 0 6 0 0 0 - 80 - 0 0 - - 0",
    "",
  ].join("\n");
  const out = rewriteServerState(state, served, next).split("\n");
  assert.equal(out[2], "2 pool-1:listener-1 1 a 192.0.2.1 2 0 1 1 10 15 3 4 6 0 0 0 - 80 - 0 0 - - 0", "initial weight = current weight");
  assert.equal(out[3], "2 pool-1:listener-1 2 b 192.0.2.2 0 5 1 1 10 8 2 0 6 0 0 0 - 80 - 0 0 - - 0", "disabled in the new config");
  assert.equal(out[4], state.split("\n")[4], "operator's maintenance kept");
  assert.equal(out.length, 6, "server d dropped");
  // After a runtime apply that failed half-way, every server follows the new config.
  const all = rewriteServerState(state, served, next, { all: true }).split("\n");
  assert.equal(all[4], "2 pool-1:listener-1 3 c 192.0.2.3 0 0 2 2 10 8 2 0 6 0 0 0 - 80 - 0 0 - - 0");
  // A server added at runtime and left in maintenance by a failed step (the served config lacks it).
  const added = rewriteServerState(head + "2 pool-1:listener-1 5 e 192.0.2.5 0 1 1 1 10 8 2 0 6 0 0 0 - 80 - 0 0 - - 0\n", served,
    parseConfigModel(cfg([A, "server e 192.0.2.5:80 weight 1"])));
  assert.equal(added.split("\n")[2], "2 pool-1:listener-1 5 e 192.0.2.5 0 0 1 1 10 8 2 0 6 0 0 0 - 80 - 0 0 - - 0");
});

test("member changes of a validated config need no haproxy -c; anything it cannot vouch for does", () => {
  const why = (x: string, y: string) => whyValidationNeeded(parseConfigModel(x), parseConfigModel(y));
  assert.equal(why(cfg([A, B]), cfg([A.replace("weight 1", "weight 256"), `${B} disabled`])), undefined);
  assert.equal(why(cfg([A, B]), cfg([A.replace("192.0.2.1:80", "192.0.2.7:81")])), undefined, "moved, b removed");
  // Added with the keywords of a server of the backend.
  assert.equal(why(cfg([A]), cfg([A, B.replace("weight 1", "weight 4")])), undefined);
  assert.match(why(cfg([A]), cfg([A, B.replace("inter 5s", "inter 5x")])) ?? "", /keywords no server of its backend had/);
  assert.match(why(cfg([A]), cfg([A.replace("weight 1", "weight 300")])) ?? "", /weight 300/);
  assert.match(why(cfg([`${A} id 3`]), cfg([`${A} id 3`, `${B} id 3`])) ?? "", /with an id/);
  // A removed server another line names.
  assert.match(why(cfg([A, B], { extra: ["use-server b if { path_beg /b }"] }), cfg([A], { extra: ["use-server b if { path_beg /b }"] })) ?? "", /removed server b is named/);
  // Any other difference.
  assert.match(why(cfg([A]), cfg([A], { timeout: "1x" })) ?? "", /timeout client/);
});
