// Graceful shutdown: in-flight calls finish, new connections are refused,
// long-lived streams are closed after the grace period.
import { test } from "node:test";
import assert from "node:assert/strict";
import { once } from "node:events";
import { SystemService } from "../../src/gen/amphora/v1/system_pb.js";
import { Health } from "../../src/gen/grpc/health/v1/health_pb.js";
import { startTestAgent } from "../support/agent.js";

test("an in-flight call completes during shutdown and later calls are refused", async (t) => {
  const agent = await startTestAgent();
  t.after(() => agent.cleanup());
  const sys = agent.client(SystemService, "grpc");
  await sys.getApiVersion({}); // connection established
  const received = once(agent.server.server, "stream");
  const call = sys.getInfo({}); // runs `haproxy -v` and `keepalived -v`: takes a while
  await received;
  const stopped = agent.stop(3000);
  const info = await call;
  assert.equal(info.apiVersion, "1.0");
  await stopped;
  await assert.rejects(agent.client(SystemService, "connect").getApiVersion({}));
});

test("an open stream does not keep the agent from stopping past the grace period", async (t) => {
  const agent = await startTestAgent();
  t.after(() => agent.cleanup());
  const ac = new AbortController();
  t.after(() => ac.abort());
  const stream = agent.client(Health, "grpc").watch({}, { signal: ac.signal });
  const first = await stream[Symbol.asyncIterator]().next();
  assert.equal(first.done, false);
  const started = Date.now();
  await agent.stop(300);
  // Bounded, not a timing target: the stop must not hang on the stream.
  assert.ok(Date.now() - started < 10_000);
});
