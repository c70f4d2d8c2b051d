// WatchStats messages after the first are written straight to the
// response on the binary protocols (src/transport/direct-stream.ts), with
// or without the compression a client negotiated; JSON keeps connect's
// pipeline. Real agent, real haproxy (a load balancer of 1,500 members, so
// that a snapshot is over RELEASE_AFTER_BYTES), connect-node's own clients
// decoding every message.
//
// What tells the two paths apart on the wire: connect's pipeline keeps the
// last message's bytes until the next one passes, so after every big
// snapshot it goes through, the stream sends an empty message (see
// stats-service). The direct path keeps nothing: only the first snapshot
// (which connect writes, with the headers) is followed by one.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { toBinary } from "@bufbuild/protobuf";
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { LoadBalancerStatsSchema, StatsService, WatchMode, type WatchStatsResponse } from "../../src/gen/amphora/v1/stats_pb.js";
import { RELEASE_AFTER_BYTES } from "../../src/services/stats-service.js";
import { startTestAgent } from "../support/agent.js";
import { testEnv } from "../stats/fixture.js";

const env = await testEnv();
after(() => env.cleanup());
const lb = await env.startLb({ members: 1500, sharedBackend: true });
env.catalog.put(lb.ref());
const agent = await startTestAgent({ catalog: env.catalog });
after(() => agent.cleanup());

type Kind = "connect" | "connect-json" | "grpc" | "grpc-web";

function transport(kind: Kind, compress: boolean, httpVersion: "2" | "1.1" = "2"): Transport {
  const base = {
    baseUrl: agent.url,
    httpVersion,
    nodeOptions: { ca: agent.ca, cert: agent.cert, key: agent.key },
    // connect-node clients accept gzip and br unless told otherwise.
    ...(compress ? {} : { acceptCompression: [] }),
  };
  if (kind === "grpc") return createGrpcTransport(base);
  if (kind === "grpc-web") return createGrpcWebTransport(base);
  return createConnectTransport({ ...base, useBinaryFormat: kind === "connect" });
}

async function firstMessages(kind: Kind, compress: boolean, n: number, httpVersion: "2" | "1.1" = "2"): Promise<WatchStatsResponse[]> {
  const ac = new AbortController();
  const got: WatchStatsResponse[] = [];
  const client = createClient(StatsService, transport(kind, compress, httpVersion));
  try {
    for await (const m of client.watchStats({ intervalMs: 100, mode: WatchMode.SNAPSHOTS }, { signal: ac.signal })) {
      got.push(m);
      if (got.length >= n) break;
    }
  } catch (e) {
    if (ConnectError.from(e).code !== Code.Canceled) throw e;
  } finally {
    ac.abort();
  }
  return got;
}

const lbBytes = (r: WatchStatsResponse) => r.loadBalancers.reduce((n, l) => n + toBinary(LoadBalancerStatsSchema, l).length, 0);
/** "S": a big snapshot of the load balancer, "e": an empty message. */
const shape = (got: WatchStatsResponse[]) => got.map((r) => (r.full && lbBytes(r) >= RELEASE_AFTER_BYTES ? "S" : lbBytes(r) === 0 && !r.full ? "e" : "?")).join("");

for (const kind of ["connect", "grpc", "grpc-web"] as const) {
  for (const compress of [false, true]) {
    test(`${kind}${compress ? " (gzip negotiated)" : ""}: messages after the first go past connect's pipeline, in order, whole`, async () => {
      const got = await firstMessages(kind, compress, 6);
      assert.equal(shape(got), "SeSSSS");
      assert.deepEqual(got.map((r) => r.sequence), [1n, 2n, 3n, 4n, 5n, 6n]);
      for (const r of got.filter((x) => x.full)) {
        assert.equal(r.loadBalancers[0]!.lbId, lb.lbId);
        assert.equal(r.loadBalancers[0]!.pools[0]!.members.length, 1500);
      }
      const at = got.filter((x) => x.full).map((r) => r.collectedAt!.seconds * 1000n + BigInt(Math.floor(r.collectedAt!.nanos / 1e6)));
      assert.ok(at.every((t, i) => i === 0 || t > at[i - 1]!), "snapshots in the order they were taken");
    });
  }
}

for (const kind of ["connect", "grpc-web"] as const) {
  test(`${kind} over HTTP/1.1: the same, in chunked encoding`, async () => {
    const got = await firstMessages(kind, true, 4, "1.1");
    assert.equal(shape(got), "SeSS");
    assert.deepEqual(got.map((r) => r.sequence), [1n, 2n, 3n, 4n]);
  });
}

test("connect-json keeps connect's pipeline: every big snapshot is followed by an empty message", async () => {
  const got = await firstMessages("connect-json", true, 6);
  assert.equal(shape(got), "SeSeSe");
  assert.deepEqual(got.map((r) => r.sequence), [1n, 2n, 3n, 4n, 5n, 6n]);
});

test("a client that goes away while the agent writes directly releases its subscription", async () => {
  const mon = agent.ctx.monitoring;
  await firstMessages("grpc", false, 4);
  const deadline = Date.now() + 5000;
  while (mon.hub.subscriberCount > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(mon.hub.subscriberCount, 0);
});
