// Set-up shared by the load balancer tests: a real agent plus a folder for
// backends' and configs' files, both removed (with every haproxy the agent
// started) when the test ends, also when it fails.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import assert from "node:assert/strict";
import type { TestContext } from "node:test";
import { ConnectError } from "@connectrpc/connect";
import { startTestAgent, type TestAgent } from "./agent.js";
import { killHaproxiesUnder } from "./haproxy.js";

export async function agentWithRunDir(t: TestContext): Promise<{ agent: TestAgent; runDir: string }> {
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  t.after(() => rmSync(runDir, { recursive: true, force: true }));
  const agent = await startTestAgent();
  t.after(async () => {
    await killHaproxiesUnder(agent.stateDir);
    await agent.cleanup();
  });
  return { agent, runDir };
}

/** The error a call fails with; fails the test if the call succeeds. */
export async function rpcError(p: Promise<unknown>): Promise<ConnectError> {
  try {
    await p;
  } catch (e) {
    return ConnectError.from(e);
  }
  assert.fail("expected the call to fail");
}
