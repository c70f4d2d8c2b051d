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
import { LoadBalancerManager, type ManagerOptions } from "../../src/haproxy/manager.js";

export async function agentWithRunDir(t: TestContext): Promise<{ agent: TestAgent; runDir: string }> {
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  t.after(() => rmSync(runDir, { recursive: true, force: true }));
  const agent = await startTestAgent();
  t.after(async () => {
    // The agent first (it would restart a haproxy that dies while it runs), then its haproxy.
    await agent.cleanup();
    await killHaproxiesUnder(agent.stateDir);
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

/**
 * A state dir and a run dir for tests that drive LoadBalancerManager
 * directly (no agent); `open` starts a manager on that state dir. Managers,
 * haproxy processes and both dirs are cleaned up when the test ends.
 */
export function managerDirs(t: TestContext) {
  const stateDir = mkdtempSync(join(tmpdir(), "amt-rev-"));
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  const managers: LoadBalancerManager[] = [];
  t.after(async () => {
    await Promise.all(managers.map((m) => m.close()));
    await killHaproxiesUnder(stateDir);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(runDir, { recursive: true, force: true });
  });
  // `options` override the defaults (e.g. a watch and a restart backoff for
  // supervision tests); the hook above closes every manager before it kills
  // haproxy and removes the dirs (node:test runs after-hooks in the order they were added).
  const open = async (options: Partial<ManagerOptions> = {}) => {
    const m = await LoadBalancerManager.open({ stateDir, certDir: join(stateDir, "certs"), settings: () => ({ haproxyCmd: "/usr/sbin/haproxy", netns: "" }), watchIntervalMs: 0, ...options });
    managers.push(m);
    return m;
  };
  return { stateDir, runDir, open };
}
