// A stream that starts with its signal already aborted (a deadline of 0 ms,
// as Connect and gRPC allow) ends at once with deadline_exceeded: before,
// the implementations waited for an "abort" event an aborted signal never
// fires again, and the stream stayed open until the client gave up (found
// by `npm run fuzz` with protocol headers varied).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { connectH2, envelope, outcomeOf, rawRequest } from "../support/raw-rpc.js";

let agent: TestAgent;
before(async () => {
  agent = await startTestAgent();
});
after(async () => {
  await agent?.cleanup();
});

const STREAMS: [string, string][] = [
  ["/amphora.v1.EventService/WatchEvents", "{}"],
  ["/amphora.v1.StatsService/WatchStats", '{"intervalMs":1000}'],
  ["/grpc.health.v1.Health/Watch", "{}"],
];

for (const [path, body] of STREAMS) {
  for (const [protocol, contentType, headers] of [
    ["Connect", "application/connect+json", { "connect-timeout-ms": "0" }],
    ["gRPC", "application/grpc+json", { "grpc-timeout": "0m" }],
  ] as const) {
    test(`${path} over ${protocol} with a deadline of 0 ends at once, deadline_exceeded`, async () => {
      const s = await connectH2(agent.url, agent);
      try {
        const answer = await Promise.race([
          rawRequest(s, path, contentType, envelope(Buffer.from(body)), headers),
          new Promise<never>((_, reject) => setTimeout(() => reject(new Error("still open after 5 s")), 5000).unref()),
        ]);
        assert.equal(outcomeOf(contentType, answer).code, "deadline_exceeded");
      } finally {
        s.destroy();
      }
    });
  }
}
