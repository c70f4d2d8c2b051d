// Reload-free apply through the agent's RPCs, as Octavia's controller drives
// it (upload the full config, then RELOAD), with real haproxy, real
// backends and keep-alive traffic: member changes run on the worker with no
// new one and no failed request; a mixed change reloads once; an identical
// config applies nothing; a runtime step that fails ends in a reload that
// runs exactly the stored config; a later reload follows the config, not
// the states saved from runtime changes.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { Agent, request } from "node:http";
import { join } from "node:path";
import { freePort, startBackend, type Backend } from "../support/haproxy.js";
import { agentWithRunDir, rpcError } from "../support/lb-test.js";
import { Code } from "@connectrpc/connect";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { ApplyMethod } from "../../src/gen/amphora/v1/events_pb.js";
import { masterCommand } from "../../src/haproxy/master-cli.js";
import { parseShowProc } from "../../src/haproxy/show-proc.js";
import { parseConfigModel } from "../../src/haproxy/config-model.js";
import { parseServersState } from "../../src/haproxy/runtime-apply.js";

interface Member { id: string; port: number; weight: number; disabled?: boolean }

function render(o: { lbId: string; port: number; pool: string; members: Member[]; stateFile?: string; timeout?: string }): string {
  return [
    `# Configuration for loadbalancer ${o.lbId}`,
    "global", "    daemon", "    maxconn 4096", "    noreuseport", "    hard-stop-after 5s",
    ...(o.stateFile ? [`    server-state-file ${o.stateFile}`] : []), "",
    "defaults", "    retries 3", "    option redispatch", "    timeout connect 5s", "    timeout client 50s",
    `    timeout server ${o.timeout ?? "50s"}`, ...(o.stateFile ? ["    load-server-state-from-file global"] : []), "",
    `frontend ${o.lbId}`, "    maxconn 4096", `    bind 127.0.0.1:${o.port}`, "    mode http", "    option idle-close-on-response",
    `    default_backend ${o.pool}`, "",
    `backend ${o.pool}`, "    mode http", "    balance roundrobin", "    fullconn 4096",
    ...o.members.map((m) => `    server ${m.id} 127.0.0.1:${m.port} weight ${m.weight}${m.disabled ? " disabled" : ""}`), "",
  ].join("\n");
}

async function backends(t: TestContext, n: number): Promise<Backend[]> {
  const out: Backend[] = [];
  for (let i = 0; i < n; i++) out.push(await startBackend(`b${i}`));
  t.after(() => Promise.all(out.map((b) => b.close())));
  return out;
}

/** Keep-alive clients sending requests back to back until stopped. */
function keepAliveLoad(port: number, clients: number) {
  let stop = false;
  const r = { ok: 0, failed: 0, errors: [] as string[] };
  const loops = Array.from({ length: clients }, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    while (!stop) {
      await new Promise<void>((done) => {
        const req = request({ host: "127.0.0.1", port, path: "/", agent, timeout: 5000 }, (res) => {
          res.resume();
          res.on("end", () => {
            if (res.statusCode === 200) r.ok++;
            else {
              r.failed++;
              r.errors.push(`status ${res.statusCode}`);
            }
            done();
          });
        });
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", (e) => {
          r.failed++;
          r.errors.push(e.message);
          done();
        });
        req.end();
      });
    }
    agent.destroy();
  });
  return { result: r, async stop() {
    stop = true;
    await Promise.all(loops);
    return r;
  } };
}

async function proc(sock: string) {
  return parseShowProc(await masterCommand(sock, "show proc"));
}

/** Every server of the config runs with its address, port, weight and admin state; no other server runs. */
async function assertRunsExactly(sock: string, text: string): Promise<void> {
  const running = parseServersState(await masterCommand(sock, "@1 show servers state"));
  const want = parseConfigModel(text).sections.filter((s) => s.type === "backend").flatMap((s) => [...s.servers.values()].map((v) => ({ be: s.name, ...v })));
  assert.deepEqual(
    running.map((r) => `${r.backend}/${r.name} ${r.addr}:${r.port} w${r.weight}${r.admin & 1 ? " maint" : ""}${r.admin & 8 ? " drain" : ""}`).sort(),
    want.map((w) => `${w.be}/${w.name} ${w.ip}:${w.port} w${w.weight}${w.disabled ? " maint" : ""}`).sort(),
  );
}

async function setup(t: TestContext, o: { stateFile?: boolean } = {}) {
  const { agent } = await agentWithRunDir(t);
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const port = await freePort();
  const pool = `${randomUUID()}:${lbId}`;
  const sock = join(agent.stateDir, "lb", lbId, "master.sock");
  const stateFile = o.stateFile ? join(agent.stateDir, lbId, "servers-state") : undefined;
  const cfg = (members: Member[], timeout?: string) => render({ lbId, port, pool, members, stateFile, timeout });
  const upload = async (text: string, action = LoadBalancerAction.RELOAD) => {
    await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: text });
    return lb.controlLoadBalancer({ lbId, action });
  };
  return { agent, lb, lbId, port, sock, cfg, upload };
}

test("1,000 member changes (weights, drain, disable, add, remove) under keep-alive load: no failed request, no new worker", async (t) => {
  const be = await backends(t, 4);
  const s = await setup(t);
  // Two members that stay enabled throughout, so the pool always has a server.
  let members: Member[] = [
    { id: "anchor-0", port: be[0]!.port, weight: 1 },
    { id: "anchor-1", port: be[1]!.port, weight: 1 },
    ...Array.from({ length: 6 }, (_, i) => ({ id: `m-${i}`, port: be[i % 4]!.port, weight: 1 })),
  ];
  const first = await s.upload(s.cfg(members), LoadBalancerAction.START);
  assert.equal(first.method, ApplyMethod.START);
  const before = await proc(s.sock);
  const load = keepAliveLoad(s.port, 4);
  t.after(() => load.stop());

  // Batched: 50 uploads of 20 changes each (each upload is one `haproxy -c`,
  // which is what bounds the test's run time).
  let seq = 6;
  let changes = 0;
  let rnd = 7;
  const random = (n: number) => (rnd = (rnd * 1103515245 + 12345) % 2 ** 31) % n;
  for (let round = 0; round < 50; round++) {
    const next = members.map((m) => ({ ...m }));
    const touched = new Set<string>();
    for (let k = 0; k < 20; k++) {
      const kind = random(5);
      const pick = next.filter((m) => !m.id.startsWith("anchor") && !touched.has(m.id));
      if (kind === 3 || pick.length < 3) {
        const m = { id: `m-${seq++}`, port: be[random(4)]!.port, weight: 1 + random(5) };
        next.push(m);
        touched.add(m.id);
      } else {
        const m = pick[random(pick.length)]!;
        touched.add(m.id);
        if (kind === 0) m.weight = (m.weight % 9) + 1;
        else if (kind === 1) m.weight = m.weight === 0 ? 3 : 0; // drain: weight 0, as Octavia renders it
        else if (kind === 2) m.disabled = !m.disabled;
        else next.splice(next.indexOf(m), 1);
      }
      changes++;
    }
    const r = await s.upload(s.cfg(next));
    assert.equal(r.method, ApplyMethod.RUNTIME, `round ${round}: ${r.reason} ${r.details}`);
    members = next;
  }
  const result = await load.stop();
  assert.equal(changes, 1000);
  assert.equal(result.failed, 0, `failed requests: ${result.errors.slice(0, 5).join("; ")}`);
  assert.ok(result.ok > 100, `requests served: ${result.ok}`);
  const after = await proc(s.sock);
  assert.equal(after.master.reloads, before.master.reloads, "no reload");
  assert.deepEqual(after.workers.map((w) => w.pid), before.workers.map((w) => w.pid), "no new worker");
  await assertRunsExactly(s.sock, s.cfg(members));
  const st = (await s.lb.getLoadBalancerStatus({ lbId: s.lbId })).status!;
  assert.equal(st.lastApplyMethod, ApplyMethod.RUNTIME);
  assert.equal(st.servedVersion, st.configVersion);
});

test("identical config: nothing applied, no new worker; a mixed change reloads exactly once and says why", async (t) => {
  const be = await backends(t, 2);
  const s = await setup(t);
  const members = [{ id: "a", port: be[0]!.port, weight: 1 }, { id: "b", port: be[1]!.port, weight: 1 }];
  await s.upload(s.cfg(members), LoadBalancerAction.START);
  const p0 = await proc(s.sock);
  // Octavia re-uploads the same config and reloads.
  const same = await s.upload(s.cfg(members));
  assert.equal(same.method, ApplyMethod.RUNTIME);
  assert.match(same.reason, /nothing to apply/);
  // A start of the running load balancer with the same config: nothing either.
  const start = await s.upload(s.cfg(members), LoadBalancerAction.START);
  assert.equal(start.method, ApplyMethod.UNSPECIFIED);
  assert.match(start.details, /already running/);
  assert.equal((await proc(s.sock)).master.reloads, p0.master.reloads);

  // A weight haproxy refuses is still refused at upload (the member-change shortcut does not skip it).
  const bad = await rpcError(s.lb.putConfig({ amphoraId: s.agent.config.amphoraId, lbId: s.lbId, config: s.cfg([{ ...members[0]!, weight: 300 }, members[1]!]) }));
  assert.equal(bad.code, Code.InvalidArgument);
  assert.match(bad.findDetails(ErrorInfoSchema)[0]?.details ?? "", /weight/);
  const mixed = s.cfg([{ ...members[0]!, weight: 4 }, members[1]!], "40s");
  const r = await s.upload(mixed);
  assert.equal(r.method, ApplyMethod.RELOAD);
  assert.match(r.reason, /defaults: "timeout server 50s" became "timeout server 40s"/);
  const p1 = await proc(s.sock);
  assert.equal(p1.master.reloads, p0.master.reloads + 1, "exactly one reload");
  await assertRunsExactly(s.sock, mixed);
  const st = (await s.lb.getLoadBalancerStatus({ lbId: s.lbId })).status!;
  assert.equal(st.lastApplyMethod, ApplyMethod.RELOAD);
  assert.match(st.lastApplyReason, /timeout server/);
  // A member change after a reload is runtime again; a START of the running one applies it too.
  const w = s.cfg([{ ...members[0]!, weight: 2 }, members[1]!], "40s");
  const again = await s.upload(w, LoadBalancerAction.START);
  assert.equal(again.method, ApplyMethod.RUNTIME, again.reason);
  assert.equal((await proc(s.sock)).master.reloads, p1.master.reloads);
  await assertRunsExactly(s.sock, w);
});

test("a runtime step that fails mid-way ends in a reload that runs exactly the stored config (state file rewritten)", async (t) => {
  const be = await backends(t, 3);
  const s = await setup(t, { stateFile: true });
  const v1 = s.cfg([{ id: "a", port: be[0]!.port, weight: 1 }, { id: "b", port: be[1]!.port, weight: 1, disabled: true }]);
  await s.upload(v1, LoadBalancerAction.START);
  const p0 = await proc(s.sock);
  let n = 0;
  // The test's fault: the third command (after `add server c` and its enabling) is refused.
  s.agent.ctx.lbs.setRuntimeApply({
    beforeCommand: () => {
      if (++n === 3) throw new Error("injected failure");
    },
  });
  const v2 = s.cfg([{ id: "a", port: be[2]!.port, weight: 5 }, { id: "b", port: be[1]!.port, weight: 1 }, { id: "c", port: be[2]!.port, weight: 2, disabled: true }]);
  const r = await s.upload(v2);
  assert.equal(r.method, ApplyMethod.RELOAD);
  assert.match(r.reason, /runtime apply failed: .*injected failure/);
  assert.equal((await proc(s.sock)).master.reloads, p0.master.reloads + 1);
  await assertRunsExactly(s.sock, v2);
});

test("after runtime changes, a later reload follows the config, not the server states saved before it", async (t) => {
  const be = await backends(t, 3);
  const s = await setup(t, { stateFile: true });
  const v1 = s.cfg([{ id: "a", port: be[0]!.port, weight: 1 }, { id: "b", port: be[1]!.port, weight: 1 }]);
  await s.upload(v1, LoadBalancerAction.START);
  // Runtime: a's weight 1 -> 5 and port moves; b disabled.
  const v2 = s.cfg([{ id: "a", port: be[2]!.port, weight: 5 }, { id: "b", port: be[1]!.port, weight: 1, disabled: true }]);
  assert.equal((await s.upload(v2)).method, ApplyMethod.RUNTIME);
  // Reload (timeout change) back to a's old weight and port, b enabled:
  // haproxy alone would keep weight 5 (same initial weight as the file),
  // the file's port and the runtime maintenance.
  const v3 = s.cfg([{ id: "a", port: be[0]!.port, weight: 1 }, { id: "b", port: be[1]!.port, weight: 1 }], "40s");
  assert.equal((await s.upload(v3)).method, ApplyMethod.RELOAD);
  await assertRunsExactly(s.sock, v3);
  // And a port change that needs the reload anyway (with a timeout change).
  const v4 = s.cfg([{ id: "a", port: be[2]!.port, weight: 1 }, { id: "b", port: be[1]!.port, weight: 1 }], "30s");
  assert.equal((await s.upload(v4)).method, ApplyMethod.RELOAD);
  await assertRunsExactly(s.sock, v4);
});
