// Query parameters set the request's top-level scalar fields the path and
// body leave free (as google.api.http does): a controller can force a
// reload that the memory check refuses, over plain REST.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { agentWithRunDir } from "../support/lb-test.js";
import { freePort, httpGet, octaviaConfig } from "../support/haproxy.js";
import { RestClient } from "./https-client.js";

test("PUT /1.0/loadbalancer/{id}/reload?force=true overrides the memory check; bad values are 400, other parameters ignored", async (t) => {
  const { agent, runDir } = await agentWithRunDir(t);
  const ctl = new RestClient(agent.url, agent, agent.config.amphoraId);
  t.after(() => ctl.close());
  const lbId = randomUUID();
  const port = await freePort();
  const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port, members: [], returnBody: "one" }] });
  const put = (text: string) => ctl.request("PUT", `/1.0/loadbalancer/${agent.config.amphoraId}/${lbId}/haproxy`, { body: text });
  assert.equal((await put(cfg.text)).status, 202);
  assert.equal((await ctl.request("PUT", `/1.0/loadbalancer/${lbId}/start`)).status, 202);
  assert.equal((await put(cfg.text.replace('"one"', '"two"'))).status, 202);

  // The real check with a reserve no machine has.
  agent.ctx.lbs.setMemoryReserveBytes(2 ** 50);
  const refused = await ctl.request("PUT", `/1.0/loadbalancer/${lbId}/reload`);
  assert.equal(refused.status, 503);
  assert.match(refused.json<{ message: string }>().message, /reload refused/);
  assert.equal((await httpGet(port)).body, "one");

  for (const [query, detail] of [
    ["force=maybe", /force: expected true or false/],
    ["lb_id=" + randomUUID(), /query parameter "lb_id" is given by the path or body/],
  ] as const) {
    const r = await ctl.request("PUT", `/1.0/loadbalancer/${lbId}/reload?${query}`);
    assert.equal(r.status, 400, query);
    assert.match(r.json<{ details: string }>().details, detail, query);
  }
  // Parameters that are no field of the request are ignored, as before.
  assert.equal((await ctl.request("PUT", `/1.0/loadbalancer/${lbId}/reload?forced=true`)).status, 503);
  assert.equal((await httpGet(port)).body, "one", "nothing reloaded by the refused calls");

  const forced = await ctl.request("PUT", `/1.0/loadbalancer/${lbId}/reload?force=true`);
  assert.equal(forced.status, 202, forced.text);
  assert.equal((await httpGet(port)).body, "two");
});
