// Stopping the agent ends open WatchStats streams normally (the driver then
// reconnects to the next agent) instead of holding shutdown for the whole
// grace period and cutting them.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { StatsService, WatchMode } from "../../src/gen/amphora/v1/stats_pb.js";
import { startTestAgent } from "../support/agent.js";
import { testEnv, until } from "./fixture.js";

test("agent stop ends open streams normally and promptly", async () => {
  const env = await testEnv();
  after(() => env.cleanup());
  const lb = await env.startLb({ members: 1 });
  env.catalog.put(lb.ref());
  const agent = await startTestAgent({ catalog: env.catalog });
  after(() => agent.cleanup());
  let messages = 0;
  let outcome = "";
  const done = (async () => {
    try {
      for await (const _ of agent.client(StatsService, "grpc").watchStats({ intervalMs: 200, mode: WatchMode.SNAPSHOTS })) messages++;
      outcome = "ended";
    } catch (e) {
      outcome = `error: ${(e as Error).message}`;
    }
  })();
  await until("streaming", () => messages >= 2 || undefined);
  const t0 = Date.now();
  await agent.stop(10_000);
  await done;
  assert.equal(outcome, "ended");
  assert.ok(Date.now() - t0 < 5000, `stop took ${Date.now() - t0} ms`);
  assert.equal(agent.ctx.monitoring.hub.subscriberCount, 0);
  assert.equal(agent.ctx.monitoring.hub.groupCount, 0);
});
