// Starts a real agent in this process on an ephemeral loopback port with a
// fresh state directory and dev PKI, and builds clients for it.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createClient, type Client, type Transport } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import type { DescService } from "@bufbuild/protobuf";
import { startAgent, type AgentOptions, type RunningAgent } from "../../src/agent/agent.js";
import { silentLogger } from "../../src/log.js";
import { killHaproxiesUnder } from "./haproxy.js";

export interface TestAgent extends RunningAgent {
  stateDir: string;
  ca: string;
  cert: string;
  key: string;
  transport(kind?: "connect" | "connect-json" | "grpc" | "grpc-web"): Transport;
  client<T extends DescService>(svc: T, kind?: "connect" | "connect-json" | "grpc" | "grpc-web"): Client<T>;
  /** Stops the agent; if it made its own state directory, ends its haproxy processes and removes the directory. */
  cleanup(): Promise<void>;
}

export async function startTestAgent(o: AgentOptions = {}): Promise<TestAgent> {
  const stateDir = o.stateDir ?? mkdtempSync(join(tmpdir(), "amphora-test-"));
  let agent: RunningAgent;
  try {
    agent = await startAgent({
      dev: true,
      listen: "127.0.0.1:0",
      logger: process.env.TEST_LOG ? undefined : silentLogger,
      logLevel: process.env.TEST_LOG,
      ...o,
      // The config policy (on by default in the agent) confines sockets and
      // files to the state dir; most tests put theirs in temp folders of
      // their own. Policy tests turn it on (test/haproxy/config-policy.test.ts).
      overrides: { configPolicy: false, ...o.overrides },
      stateDir,
    });
  } catch (e) {
    // A failed start unwinds what it started; the folder made here goes too.
    if (!o.stateDir) rmSync(stateDir, { recursive: true, force: true });
    throw e;
  }
  const pki = agent.pki!;
  const ca = readFileSync(pki.ca, "utf8");
  const cert = readFileSync(pki.clientCert, "utf8");
  const key = readFileSync(pki.clientKey, "utf8");
  const transports = new Map<string, Transport>();
  const transport = (kind: "connect" | "connect-json" | "grpc" | "grpc-web" = "connect") => {
    let t = transports.get(kind);
    if (!t) {
      const nodeOptions = { ca, cert, key };
      const base = { baseUrl: agent.url, httpVersion: "2" as const, nodeOptions };
      t =
        kind === "grpc" ? createGrpcTransport(base)
        : kind === "grpc-web" ? createGrpcWebTransport(base)
        : createConnectTransport({ ...base, useBinaryFormat: kind === "connect" });
      transports.set(kind, t);
    }
    return t;
  };
  let stopped = false;
  return {
    ...agent,
    stateDir,
    ca,
    cert,
    key,
    transport,
    client: (svc, kind) => createClient(svc, transport(kind)),
    async cleanup() {
      if (!stopped) {
        stopped = true;
        await agent.stop(1000);
      }
      // haproxy outlives the agent by design: when this agent owns the state
      // dir, end the haproxy processes it started before removing it.
      if (!o.stateDir) {
        await killHaproxiesUnder(stateDir);
        rmSync(stateDir, { recursive: true, force: true });
      }
    },
  };
}
