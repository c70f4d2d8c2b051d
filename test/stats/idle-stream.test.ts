// A WatchStats stream that has nothing to say for longer than the agent's
// request read timeout must stay open (CHANGES mode with nothing changing,
// or SNAPSHOTS with an interval longer than the timeout).
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { Code, ConnectError } from "@connectrpc/connect";
import { StatsService, WatchMode, type WatchStatsResponse } from "../../src/gen/amphora/v1/stats_pb.js";
import { startTestAgent } from "../support/agent.js";
import { testEnv } from "./fixture.js";

const env = await testEnv();
// Registered before the agent starts, so it also runs when that start fails.
after(() => env.cleanup());
const lb = await env.startLb({ members: 1 });
env.catalog.put(lb.ref());
const agent = await startTestAgent({ catalog: env.catalog, overrides: { requestReadTimeoutS: 2 } });
after(() => agent.cleanup());

for (const kind of ["grpc", "connect"] as const) {
  test(`an idle ${kind} stream outlives the 2 s request timeout`, async () => {
    const ac = new AbortController();
    const got: WatchStatsResponse[] = [];
    let error: unknown;
    const done = (async () => {
      try {
        for await (const m of agent.client(StatsService, kind).watchStats({ intervalMs: 3_600_000, mode: WatchMode.CHANGES }, { signal: ac.signal })) got.push(m);
      } catch (e) {
        if (ConnectError.from(e).code !== Code.Canceled) error = e;
      }
    })();
    await sleep(5000);
    assert.equal(error, undefined, `stream failed: ${String(error)}`);
    assert.equal(agent.ctx.monitoring.hub.subscriberCount, 1, "still subscribed");
    assert.ok(got.length >= 1);
    assert.equal(got[0]!.full, true);
    // Later messages, if any, are keepalives: no load balancers, not full.
    for (const m of got.slice(1)) {
      assert.equal(m.full, false);
      assert.equal(m.loadBalancers.length, 0);
    }
    ac.abort();
    await done;
  });
}
