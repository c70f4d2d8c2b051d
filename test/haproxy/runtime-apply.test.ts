// Server changes through the master CLI on a real haproxy 2.6 worker
// (no agent): each kind applied and verified, with traffic through it, no
// new worker; a removed server's request in flight finishes; a failed step
// and a mismatch are reported.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { runChecked } from "../../src/system/exec.js";
import { masterCommand } from "../../src/haproxy/master-cli.js";
import { parseShowProc } from "../../src/haproxy/show-proc.js";
import { diffConfigs, parseConfigModel, type ServerChange } from "../../src/haproxy/config-model.js";
import { applyServerChanges, verifyServers, type RuntimeTarget } from "../../src/haproxy/runtime-apply.js";
import { freePort, httpGet, killHaproxiesUnder, startBackend, type Backend } from "../support/haproxy.js";

function config(port: number, servers: string[], balance = "roundrobin"): string {
  return [
    "global", "    maxconn 1000", "    noreuseport", "",
    "defaults", "    mode http", "    timeout connect 2s", "    timeout client 10s", "    timeout server 10s", "    option idle-close-on-response", "",
    "frontend fe", `    bind 127.0.0.1:${port}`, "    default_backend pool:listener", "",
    "backend pool:listener", `    balance ${balance}`, ...servers.map((s) => `    ${s}`), "",
  ].join("\n");
}

async function startHaproxy(t: TestContext, text: string): Promise<{ dir: string; target: RuntimeTarget; workers: () => Promise<number[]> }> {
  const dir = mkdtempSync(join(tmpdir(), "amt-rtapply-"));
  t.after(async () => {
    await killHaproxiesUnder(dir);
    rmSync(dir, { recursive: true, force: true });
  });
  writeFileSync(join(dir, "h.cfg"), text);
  const sock = join(dir, "master.sock");
  await runChecked("haproxy", ["-W", "-D", "-p", join(dir, "h.pid"), "-S", `${sock},mode,600`, "-f", join(dir, "h.cfg")]);
  const workers = async () => parseShowProc(await masterCommand(sock, "show proc")).workers.map((w) => w.pid);
  let pids: number[] = [];
  for (let i = 0; i < 100 && pids.length === 0; i++) {
    pids = await workers().catch(() => []);
    if (!pids.length) await sleep(20);
  }
  assert.equal(pids.length, 1);
  return { dir, target: { masterSocket: sock, workerPid: pids[0]! }, workers };
}

function changesBetween(a: string, b: string): ServerChange[] {
  const d = diffConfigs(parseConfigModel(a), parseConfigModel(b));
  assert.equal(d.kind, "runtime", d.kind === "reload" ? d.reason : "");
  return d.kind === "runtime" ? d.changes : [];
}

/** Which backends answer `n` requests on fresh connections. */
async function spread(port: number, n: number): Promise<Record<string, number>> {
  const seen: Record<string, number> = {};
  for (let i = 0; i < n; i++) {
    const r = await httpGet(port);
    assert.equal(r.status, 200, r.body);
    seen[r.body] = (seen[r.body] ?? 0) + 1;
  }
  return seen;
}

async function backends(t: TestContext, names: string[]): Promise<Record<string, Backend>> {
  const out: Record<string, Backend> = {};
  for (const n of names) out[n] = await startBackend(n);
  t.after(() => Promise.all(Object.values(out).map((b) => b.close())));
  return out;
}

test("add, weight, disable, address, enable, remove: applied on the running worker and verified, no new worker", async (t) => {
  const be = await backends(t, ["a", "b", "c", "d"]);
  const port = await freePort();
  const srv = (n: string, rest = "weight 1", p = be[n]!.port) => `server ${n} 127.0.0.1:${p} ${rest}`;
  const v1 = config(port, [srv("a"), srv("b")]);
  const h = await startHaproxy(t, v1);
  assert.deepEqual(Object.keys(await spread(port, 4)).sort(), ["a", "b"]);

  const steps: [string, string[], (s: Record<string, number>) => void][] = [
    ["add c with a health check", [srv("a"), srv("b"), srv("c", "weight 1 check inter 1s")], (s) => assert.deepEqual(Object.keys(s).sort(), ["a", "b", "c"])],
    ["weights", [srv("a", "weight 0"), srv("b", "weight 1"), srv("c", "weight 1 check inter 1s")], (s) => assert.equal(s.a, undefined)],
    ["disable b, weight a back", [srv("a"), srv("b", "weight 1 disabled"), srv("c", "weight 1 check inter 1s")], (s) => assert.deepEqual(Object.keys(s).sort(), ["a", "c"])],
    ["move c to d's port", [srv("a"), srv("b", "weight 1 disabled"), srv("c", "weight 1 check inter 1s", be.d!.port)], (s) => assert.deepEqual(Object.keys(s).sort(), ["a", "d"])],
    ["enable b, remove a", [srv("b"), srv("c", "weight 1 check inter 1s", be.d!.port)], (s) => assert.deepEqual(Object.keys(s).sort(), ["b", "d"])],
    ["add a disabled server", [srv("b"), srv("c", "weight 1 check inter 1s", be.d!.port), srv("e", "weight 1 disabled", be.a!.port)], (s) => assert.deepEqual(Object.keys(s).sort(), ["b", "d"])],
  ];
  let prev = v1;
  for (const [what, servers, check] of steps) {
    const next = config(port, servers);
    const changes = changesBetween(prev, next);
    const r = await applyServerChanges(h.target, changes);
    assert.ok(r.ok, `${what}: ${r.ok ? "" : r.reason}`);
    assert.equal(await verifyServers(h.target, parseConfigModel(next), changes), undefined, what);
    check(await spread(port, 6));
    prev = next;
  }
  // The added server's health check runs (enabled after `add server`).
  const state = await masterCommand(h.target.masterSocket, `@!${h.target.workerPid} show servers state pool:listener`);
  const c = state.split("\n").find((l) => l.split(" ")[3] === "c")!.split(" ");
  assert.ok(Number(c[13]) & 0x04, `check of c enabled: ${c.join(" ")}`);
  assert.deepEqual(await h.workers(), [h.target.workerPid], "no new worker");
});

test("a removed server's request in flight finishes before `del server` goes through", async (t) => {
  const be = await backends(t, ["a", "b"]);
  const port = await freePort();
  const v1 = config(port, [`server a 127.0.0.1:${be.a!.port} weight 1`, `server b 127.0.0.1:${be.b!.port} weight 1`]);
  const v2 = config(port, [`server a 127.0.0.1:${be.a!.port} weight 1`]);
  const h = await startHaproxy(t, v1);
  // Two slow requests: one of them lands on b (round robin).
  const slow = [httpGet(port, "/?delay=400"), httpGet(port, "/?delay=400")];
  await sleep(50);
  const t0 = performance.now();
  const r = await applyServerChanges(h.target, changesBetween(v1, v2));
  assert.ok(r.ok, r.ok ? "" : r.reason);
  assert.ok(performance.now() - t0 > 200, "del server waited for the request");
  assert.deepEqual((await Promise.all(slow)).map((x) => x.status), [200, 200]);
  assert.equal(await verifyServers(h.target, parseConfigModel(v2), []), undefined);
});

test("a step that fails stops there and says which; verification reports what differs", async (t) => {
  const port = await freePort();
  const v1 = config(port, ["server a 127.0.0.1:1 weight 1", "server b 127.0.0.1:2 weight 1"]);
  const v2 = config(port, ["server a 127.0.0.1:1 weight 5", "server b 127.0.0.1:2 weight 6", "server c 127.0.0.1:3 weight 1"]);
  const h = await startHaproxy(t, v1);
  const changes = changesBetween(v1, v2);
  let n = 0;
  const r = await applyServerChanges(h.target, changes, {
    beforeCommand: (cmd) => {
      if (++n === 4) throw new Error(`refused ${cmd}`);
    },
  });
  assert.equal(r.ok, false);
  assert.match(!r.ok ? r.reason : "", /"set server pool:listener\/b weight 6": refused/);
  // add c, ready c, weight a done; weight b not: verification names it.
  assert.match((await verifyServers(h.target, parseConfigModel(v2), changes)) ?? "", /server b: weight 1, config 6/);
  // haproxy's own refusal (a name already used) is a failed step too.
  const dup = await applyServerChanges(h.target, changesBetween(v1, config(port, ["server a 127.0.0.1:1 weight 1", "server b 127.0.0.1:2 weight 1", "server c 127.0.0.1:3 weight 1"])));
  assert.match(!dup.ok ? dup.reason : "", /add server pool:listener\/c .* answered: /);
  // A server set that differs (c runs but the config lacks it).
  assert.match((await verifyServers(h.target, parseConfigModel(v1), [])) ?? "", /server c still runs/);
});
