// Server reflection and health, checked with the real `buf curl` client
// (from @bufbuild/buf) with no local schema.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { join } from "node:path";
import { Code, ConnectError } from "@connectrpc/connect";
import { Health, HealthCheckResponse_ServingStatus } from "../../src/gen/grpc/health/v1/health_pb.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";

const run = promisify(execFile);
let agent: TestAgent;
before(async () => (agent = await startTestAgent()));
after(async () => agent?.cleanup());

function bufCurl(...args: string[]) {
  const pki = join(agent.stateDir, "pki");
  return run("node_modules/.bin/buf", [
    "curl", "--cacert", join(pki, "ca.pem"), "--cert", join(pki, "client.pem"), "--key", join(pki, "client-key.pem"), ...args,
  ]);
}

test("buf curl lists every amphora service through reflection", async () => {
  const { stdout } = await bufCurl("--list-services", agent.url);
  for (const s of ["SystemService", "LoadBalancerService", "CertificateService", "NetworkService", "KeepalivedService", "StatsService"]) {
    assert.match(stdout, new RegExp(`^amphora\\.v1\\.${s}$`, "m"));
  }
});

for (const protocol of ["connect", "grpc", "grpcweb"]) {
  test(`buf curl calls a method without a schema over ${protocol}`, async () => {
    const { stdout } = await bufCurl("--protocol", protocol, "-d", '{"ip":"127.0.0.1"}', `${agent.url}/amphora.v1.NetworkService/GetInterface`);
    assert.deepEqual(JSON.parse(stdout), { message: "OK", interface: "lo" });
  });
}

test("gRPC health answers SERVING for the agent and its services, NOT_FOUND for others", async () => {
  const h = agent.client(Health, "grpc");
  assert.equal((await h.check({})).status, HealthCheckResponse_ServingStatus.SERVING);
  assert.equal((await h.check({ service: "amphora.v1.LoadBalancerService" })).status, HealthCheckResponse_ServingStatus.SERVING);
  await assert.rejects(h.check({ service: "no.such.Service" }), (e: ConnectError) => e.code === Code.NotFound);
});

for (const protocol of ["connect", "grpc", "grpcweb"]) {
  test(`buf curl follows the WatchStats stream without a schema over ${protocol}`, async () => {
    // The stream never ends by itself: a client deadline ends it after some messages.
    const out = await bufCurl(
      "--protocol", protocol, "--timeout", "1.5s", "-d", '{"intervalMs":200,"mode":"WATCH_MODE_SNAPSHOTS"}',
      `${agent.url}/amphora.v1.StatsService/WatchStats`,
    ).then(
      (r) => ({ stdout: r.stdout, stderr: r.stderr }),
      (e: { stdout: string; stderr: string }) => ({ stdout: e.stdout, stderr: e.stderr }),
    );
    // The deadline travels with the call (grpc-timeout / connect-timeout-ms):
    // either side may end the stream when it passes, and buf curl may report
    // it or not; any other error is a failure.
    assert.ok(out.stderr === "" || /deadline_exceeded/.test(out.stderr), out.stderr);
    // One JSON object per message, printed one after the other.
    const messages = out.stdout.split(/\n(?=\{)/).filter((s) => s.trim()).map((s) => JSON.parse(s) as { collectedAt?: string; full?: boolean });
    assert.ok(messages.length >= 3, `several snapshots in 1.5 s at 200 ms (${messages.length})`);
    assert.ok(messages.every((m) => m.full === true && typeof m.collectedAt === "string"), out.stdout.slice(0, 500));
  });
}
