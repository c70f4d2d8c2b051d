// The user/group file and the upload rewrite Octavia's controller relies on:
// its template renders `user nobody` in `global` (older ones also a
// `group`), its agent's second -f file holds only `group`, and its agent
// strips `group` lines from uploads. Checked with real haproxy: no
// "user/uid already specified" (nor group) ALERT, and the workers run as
// nobody with the file's group.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { freePort, octaviaConfig } from "../support/haproxy.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { agentWithRunDir } from "../support/lb-test.js";
import { run } from "../../src/system/exec.js";
import { rewriteUpload } from "../../src/haproxy/upload-compat.js";

test("upload rewrite: only `group` lines of `global` go, wherever indented; userlists and other lines are kept", async () => {
  const cfg = [
    "# Configuration for loadbalancer x",
    "global",
    "    daemon",
    "    user nobody",
    "    group nogroup",
    "\tgroup haproxy",
    "",
    "userlist admins",
    "    group ops users alice",
    "    user alice insecure-password x groups ops",
    "frontend f",
    "    acl g hdr(x-group) -m str group here",
    "",
  ].join("\n");
  const out = await rewriteUpload(cfg);
  assert.equal(out, cfg.replace("    group nogroup\n", "").replace("\tgroup haproxy\n", ""));
  // Nothing to change: the very same text comes back.
  assert.equal(await rewriteUpload(out), out);
});

test("a controller-rendered global (user nobody + group) is checked and runs without any ALERT; workers are nobody:<file's group>", async (t) => {
  const { agent, runDir } = await agentWithRunDir(t);
  const lb = agent.client(LoadBalancerService);
  const lbId = randomUUID();
  const port = await freePort();
  // As Octavia's template renders it (`user nobody`), plus the `group` line older controllers added.
  const cfg = octaviaConfig({ lbId, runDir, globalExtra: ["user nobody", "group nogroup"], listeners: [{ port, members: [], returnBody: "ug" }] });
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.text });
  const stored = (await lb.getConfig({ lbId })).config;
  assert.doesNotMatch(stored, /^\s*group\s/m, "the group line of the upload is not stored");
  assert.match(stored, /^\s*user nobody$/m);

  const ugFile = join(agent.stateDir, "haproxy-user-group.cfg");
  // What the agent runs, as it runs it.
  const check = await run("haproxy", ["-c", "-f", join(agent.stateDir, "lb", lbId, "haproxy.cfg"), "-f", ugFile], { timeoutMs: 10_000 });
  assert.equal(check.exitCode, 0, check.stderr);
  assert.doesNotMatch(check.stderr, /\[ALERT\]/, check.stderr);

  const ug = readFileSync(ugFile, "utf8");
  assert.doesNotMatch(ug, /\buser\b/, "the file holds no user line");
  const groupName = /^\s*group (\S+)$/m.exec(ug)?.[1];
  assert.ok(groupName, `a group line in ${JSON.stringify(ug)}`);

  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  const st = (await lb.getLoadBalancerStatus({ lbId })).status!;
  const worker = st.workers.find((w) => !w.old)!;
  const status = readFileSync(`/proc/${worker.pid}/status`, "utf8");
  const uid = /^Uid:\s+(\d+)/m.exec(status)![1];
  const gid = /^Gid:\s+(\d+)/m.exec(status)![1];
  const passwd = readFileSync("/etc/passwd", "utf8");
  const groups = readFileSync("/etc/group", "utf8");
  assert.equal(uid, new RegExp(`^nobody:[^:]*:(\\d+):`, "m").exec(passwd)![1], "worker runs as nobody");
  assert.equal(gid, new RegExp(`^${groupName}:[^:]*:(\\d+):`, "m").exec(groups)![1], `worker runs with group ${groupName}`);
});
