// Query parameters set the request's top-level scalar fields the path and
// body leave free (as google.api.http does): a controller can force a
// reload that the memory check refuses, over plain REST.
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { agentWithRunDir } from "../../support/lb-test.js";
import { freePort, httpGet, octaviaConfig } from "../../support/haproxy.js";
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
    ["force=maybe", /query parameter force: expected true or false, got "maybe"/],
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

test("query and path numbers out of their field's range answer 400 naming the parameter, never 500", async (t) => {
  const { agent, runDir } = await agentWithRunDir(t);
  const ctl = new RestClient(agent.url, agent, agent.config.amphoraId);
  t.after(() => ctl.close());
  const lbId = randomUUID();
  const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), members: [], returnBody: "one" }] });
  assert.equal((await ctl.request("PUT", `/1.0/loadbalancer/${agent.config.amphoraId}/${lbId}/haproxy`, { body: cfg.text })).status, 202);
  const stop = (q: string) => ctl.request("PUT", `/1.0/loadbalancer/${lbId}/stop?${q}`);
  // stop_timeout_ms is a uint32, expected_version a uint64 (both of StopRequest... and Control).
  for (const [query, detail] of [
    ["stop_timeout_ms=-1", /query parameter stop_timeout_ms: expected an integer from 0 to 4294967295 \(uint32\), got "-1"/],
    ["stop_timeout_ms=1.5", /query parameter stop_timeout_ms: expected an integer .*got "1.5"/],
    ["stop_timeout_ms=99999999999", /query parameter stop_timeout_ms: expected an integer from 0 to 4294967295/],
    ["stop_timeout_ms=", /query parameter stop_timeout_ms: expected an integer/],
    ["stopTimeoutMs=0x10", /query parameter stopTimeoutMs: expected an integer/],
    ["expected_version=18446744073709551616", /query parameter expected_version: expected an integer from 0 to 18446744073709551615 \(uint64\)/],
    ["expected_version=-1", /query parameter expected_version: expected an integer from 0/],
    ["expected_version=1e3", /query parameter expected_version: expected an integer/],
  ] as const) {
    const r = await stop(query);
    assert.equal(r.status, 400, `${query}: ${r.text}`);
    assert.match(r.json<{ details: string }>().details, detail, query);
  }
  // In range: the type check passes and the proto's own rule (lte 600000) answers.
  const rule = await stop("stop_timeout_ms=600001");
  assert.equal(rule.status, 400, rule.text);
  assert.match(rule.text, /stop_timeout_ms/);
  // The largest uint64 is a version, just not this one.
  const stale = await stop("expected_version=18446744073709551615");
  assert.equal(stale.status, 409, stale.text);
  assert.equal((await stop("stop_timeout_ms=100")).status, 202);
});
