// The agent on a full disk, as a real process on a small tmpfs this test
// mounts as its state directory: a restart needs no free space when its
// files are unchanged (it used to rewrite haproxy's user/group file and
// exit 1 with ENOSPC), and when a start write is needed and the disk
// refuses it, the agent still starts and serves, and reports the condition
// in its log, in GetDetails' warnings and in /metrics.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, unlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { runChecked, run } from "../../src/system/exec.js";
import { startProcess, type AgentProcess } from "../support/agent-process.js";
import { freePort, httpGet, killHaproxiesUnder, octaviaConfig } from "../support/haproxy.js";
import { RestClient } from "../transport/rest/https-client.js";

async function stop(a: AgentProcess): Promise<void> {
  const gone = once(a.proc, "exit");
  a.proc.kill("SIGTERM");
  await gone;
}

test("a full disk: the agent restarts and serves without needing space; a needed start write that fails is reported (log, details, metric)", async (t) => {
  const mnt = mkdtempSync(join(tmpdir(), "faults-full-"));
  await runChecked("mount", ["-t", "tmpfs", "-o", "size=4m,mode=0700", "faults-full", mnt]);
  const state = join(mnt, "state");
  t.after(async () => {
    await killHaproxiesUnder(state);
    await run("umount", ["-l", mnt]);
    rmdirSync(mnt);
  });
  const fill = async () => {
    // dd stops with "No space left on device": the disk is full.
    const r = await run("dd", ["if=/dev/zero", `of=${join(mnt, `fill-${randomUUID()}`)}`, "bs=4k"]);
    assert.match(r.stderr, /No space left on device/);
  };
  const args = ["--dev", "--state-dir", state, "--listen", "127.0.0.1:0"];

  // A load balancer running, so the start has haproxy to adopt and a check-script list to keep.
  let agent = await startProcess(args);
  const id = readFileSync(join(state, "amphora-id"), "utf8").trim();
  const pki = join(state, "pki");
  const tls = { ca: readFileSync(join(pki, "ca.pem"), "utf8"), cert: readFileSync(join(pki, "client.pem"), "utf8"), key: readFileSync(join(pki, "client-key.pem"), "utf8") };
  const rest = (url: string) => {
    const c = new RestClient(url, tls, id);
    t.after(() => c.agent.destroy());
    return c;
  };
  const lbId = randomUUID();
  const port = await freePort();
  const cfg = octaviaConfig({ lbId, runDir: state, listeners: [{ port, members: [], returnBody: "full" }] });
  let c = rest(agent.url);
  assert.equal((await c.request("PUT", `/1.0/loadbalancer/${id}/${lbId}/haproxy`, { body: cfg.text })).status, 202);
  assert.equal((await c.request("PUT", `/1.0/loadbalancer/${lbId}/start`)).status, 202);
  await stop(agent);

  // 1. Full disk, nothing changed since the last start: it starts, adopts haproxy, serves, reports nothing.
  await fill();
  agent = await startProcess(args);
  c = rest(agent.url);
  assert.equal((await c.request("GET", "/1.0/info")).status, 200);
  let details = (await c.request("GET", "/1.0/details")).json<{ warnings: string[]; haproxy_count: number }>();
  assert.deepEqual(details.warnings, []);
  assert.equal(details.haproxy_count, 1);
  assert.equal((await httpGet(port)).body, "full");
  await stop(agent);

  // 2. Start writes that are needed (the files are gone) on a disk still full.
  const ug = join(state, "haproxy-user-group.cfg");
  const wanted = join(state, "keepalived", "haproxy-wanted");
  unlinkSync(ug);
  unlinkSync(wanted);
  await fill(); // what the removed files freed is taken again
  agent = await startProcess(args);
  c = rest(agent.url);
  assert.equal((await c.request("GET", "/1.0/info")).status, 200, "serves");
  const warnings = async () => (await c.request("GET", "/1.0/details")).json<{ warnings: string[] }>().warnings;
  const w = await warnings();
  assert.equal(w.length, 2, JSON.stringify(w));
  assert.match(w[0]!, /could not write haproxy's user\/group file .*haproxy-user-group\.cfg.* at start: ENOSPC/);
  assert.match(w[1]!, /could not write the keepalived check script or its list of load balancers at start: ENOSPC/);
  const metrics = (await c.request("GET", "/metrics")).text;
  assert.match(metrics, /^amphora_agent_conditions\{kind="start_write_failed"\} 2$/m);
  assert.match(agent.stdout(), /"condition":"start_write_failed".*could not write haproxy's user\/group file/);
  assert.equal(existsSync(ug), false);
  assert.equal((await httpGet(port)).body, "full", "the load balancer still serves");

  // 3. Space again: the check-script follower writes its list on a later pass and that condition clears.
  for (const f of readdirSync(mnt).filter((n) => n.startsWith("fill-"))) unlinkSync(join(mnt, f));
  const by = Date.now() + 30_000;
  while ((await warnings()).length !== 1) {
    assert.ok(Date.now() < by, `still ${JSON.stringify(await warnings())}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(readFileSync(wanted, "utf8"), `${lbId}\n`);
  assert.match((await c.request("GET", "/metrics")).text, /^amphora_agent_conditions\{kind="start_write_failed"\} 1$/m);
  await stop(agent);
});
