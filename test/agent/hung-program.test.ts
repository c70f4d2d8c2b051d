// A `haproxy_cmd` that hangs in a grandchild (a wrapper script whose child
// never ends) through a real agent: the config upload answers 503 at its
// 30 s validation limit and GetInfo at its 5 s limit for `haproxy -v`, and
// no process the wrapper started remains. (Before, both calls stayed
// unanswered: the wrapper was killed but its grandchild held the pipes.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { randomUUID } from "node:crypto";
import { startTestAgent } from "../support/agent.js";
import { RestClient } from "../transport/rest/https-client.js";
import { pidRuns, scratch, within } from "../support/processes.js";
import { octaviaConfig } from "../support/haproxy.js";

test("a haproxy_cmd hanging in a grandchild: upload answers 503 and GetInfo answers, both within their limits; no sleep remains", async (t) => {
  const s = scratch(t, "faults-hung-");
  // Every run of the wrapper starts a child `sleep 3600` that writes its pid into the scratch folder.
  const wrapper = s.script("haproxy-wrapper", `sh -c 'echo $$ > "$1/$$.pid"; exec sleep 3600' sh ${s.dir}\nexec haproxy "$@"`);
  const agent = await startTestAgent({ overrides: { haproxyCmd: wrapper } });
  t.after(() => agent.cleanup());
  const rest = new RestClient(agent.url, agent, agent.config.amphoraId);
  t.after(() => rest.agent.destroy());
  const info = new RestClient(agent.url, agent, agent.config.amphoraId);
  t.after(() => info.agent.destroy());
  const lbId = randomUUID();
  const cfg = octaviaConfig({ lbId, runDir: agent.stateDir, listeners: [{ port: 1, members: [], returnBody: "x" }] }).text;

  const timed = async <T>(p: Promise<T>) => { const t0 = Date.now(); const v = await p; return { v, ms: Date.now() - t0 }; };
  // Limits: 30 s for `haproxy -c`, 5 s for `haproxy -v`; the bounds add room for a loaded machine (the old code never answered).
  const [upload, getInfo] = await Promise.all([
    within(timed(rest.request("PUT", `/1.0/loadbalancer/${agent.config.amphoraId}/${lbId}/haproxy`, { body: cfg })), 50_000, "upload"),
    within(timed(info.request("GET", "/1.0/info")), 20_000, "GetInfo"),
  ]);
  assert.equal(upload.v.status, 503, upload.v.text);
  assert.match(upload.v.text, /did not finish within 30000 ms/);
  assert.equal(getInfo.v.status, 200, getInfo.v.text);
  assert.equal(getInfo.v.json<{ haproxy_version: string }>().haproxy_version, "", "no version from a haproxy -v that timed out");
  assert.ok(upload.ms >= 29_000 && getInfo.ms >= 4_500, `answered at the limits, not before (${upload.ms} ms, ${getInfo.ms} ms)`);

  const pids = readdirSync(s.dir).filter((n) => n.endsWith(".pid")).map((n) => Number(n.split(".")[0]));
  assert.ok(pids.length >= 2, `the wrapper ran for both calls (${pids.join(",")})`);
  assert.deepEqual(pids.filter(pidRuns), [], "no sleep the wrapper started remains");
});
