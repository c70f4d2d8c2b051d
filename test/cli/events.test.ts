// `amphora events` as a child process (the compiled bin) against a real
// agent: replay with --since, live events, --json lines, --kind filters, a
// resume point from another epoch reported as "resync needed", usage and
// connection errors. Events are published into the agent's log directly
// (agent.ctx.events); where events come from is tested in test/events/.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { freePort } from "../support/haproxy.js";
import { EXIT } from "../../src/cli/exit-codes.js";
import type { AgentEvent } from "../../src/events/model.js";

const REPO = join(import.meta.dirname, "..", "..");

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `bin/amphora.js ARGS` with no AMPHORA_ settings from this environment; `onStdout` sees output as it comes. */
function cli(args: string[], home: string, onStdout?: (all: string) => void): Promise<Run> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("AMPHORA_")) env[k] = v;
  Object.assign(env, { XDG_CONFIG_HOME: home, HOME: home });
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [join(REPO, "bin", "amphora.js"), ...args], { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    p.stdout.on("data", (d) => {
      stdout += d;
      onStdout?.(stdout);
    });
    p.stderr.on("data", (d) => (stderr += d));
    p.on("error", reject);
    p.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

const cfgChanged = (n: number): AgentEvent => ({ kind: "agent_config_changed", applied: [`option${n}`], restartNeeded: [] });
const stopped = (lbId: string): AgentEvent => ({ kind: "haproxy_stopped", lbId, deleted: false });
const LB = "5c7e1f3a-0000-4000-8000-00000000abcd";

describe("amphora events", () => {
  let agent: TestAgent;
  let home = "";
  let A: string[] = [];

  before(async () => {
    home = mkdtempSync(join(tmpdir(), "amt-clihome-"));
    agent = await startTestAgent();
    A = ["--agent", agent.url, "--dev-state", agent.stateDir];
    agent.ctx.events.publish(cfgChanged(1));
    agent.ctx.events.publish(stopped(LB));
    agent.ctx.events.publish(cfgChanged(2));
  });
  after(async () => {
    await agent?.cleanup();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  test("--since 0 replays what the agent holds: one line per event, or one Event object per line with --json", async () => {
    const text = await cli([...A, "events", "--since", "0", "--count", "3"], home);
    assert.equal(text.code, EXIT.OK, text.stderr);
    const lines = text.stdout.trim().split("\n");
    assert.equal(lines.length, 3);
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\dT\S+Z #1 agent_config_changed agent configuration replaced; applied: option1$/);
    assert.match(lines[1]!, new RegExp(`#2 haproxy_stopped load balancer ${LB}: haproxy stopped$`));

    const json = await cli([...A, "events", "--since", "1", "--count", "2", "--json"], home);
    assert.equal(json.code, EXIT.OK, json.stderr);
    const evs = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(evs.map((e) => [e.seq, e.kind, e.epoch]), [["2", "EVENT_KIND_HAPROXY_STOPPED", agent.ctx.events.epoch], ["3", "EVENT_KIND_AGENT_CONFIG_CHANGED", agent.ctx.events.epoch]]);
    assert.deepEqual(evs[0].haproxy_stopped, { lb_id: LB, deleted: false });

    const only = await cli([...A, "events", "--since", "0", "--count", "1", "--kind", "haproxy_stopped", "--json"], home);
    assert.equal(JSON.parse(only.stdout).seq, "2");
  });

  test("live: events published after it started are printed as they happen", async () => {
    const before = agent.ctx.events.subscriberCount;
    const run = cli([...A, "events", "--count", "2"], home);
    const deadline = Date.now() + 15_000;
    while (agent.ctx.events.subscriberCount === before) {
      assert.ok(Date.now() < deadline, "the CLI did not subscribe");
      await sleep(20);
    }
    agent.ctx.events.publish(cfgChanged(3));
    agent.ctx.events.publish(cfgChanged(4));
    const r = await run;
    assert.equal(r.code, EXIT.OK, r.stderr);
    assert.deepEqual(r.stdout.trim().split("\n").map((l) => / #(\d+) /.exec(l)?.[1]), ["4", "5"]);
  });

  test("a resume point from another epoch: 'resync needed', then live events", async () => {
    const before = agent.ctx.events.subscriberCount;
    let sawResync = false;
    const run = cli([...A, "events", "--since", "1", "--epoch", "0123456789abcdef", "--count", "1", "--json"], home, (out) => {
      sawResync ||= out.includes('"resync"');
    });
    const deadline = Date.now() + 15_000;
    while (!sawResync || agent.ctx.events.subscriberCount === before) {
      assert.ok(Date.now() < deadline, "no resync line / no live subscription");
      await sleep(20);
    }
    agent.ctx.events.publish(cfgChanged(5));
    const r = await run;
    assert.equal(r.code, EXIT.OK, r.stderr);
    const [resync, live] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.equal(resync.resync.reason, "EPOCH_CHANGED");
    assert.deepEqual(resync.resync.from, { epoch: "0123456789abcdef", seq: "1" });
    assert.equal(live.kind, "EVENT_KIND_AGENT_CONFIG_CHANGED");
  });

  test("usage errors exit 2; an agent that cannot be reached exits 3", async () => {
    const bad = await cli([...A, "events", "--kind", "no_such_kind"], home);
    assert.equal(bad.code, EXIT.USAGE);
    assert.match(bad.stderr, /unknown kind 'no_such_kind' \(one of: config_stored, /);
    const epochOnly = await cli([...A, "events", "--epoch", "abc"], home);
    assert.equal(epochOnly.code, EXIT.USAGE);
    const down = await cli(["--agent", `https://127.0.0.1:${await freePort()}`, "--dev-state", agent.stateDir, "events"], home);
    assert.equal(down.code, EXIT.CONNECTION, down.stderr);
    assert.doesNotMatch(down.stderr, /\n\s+at .+:\d+:\d+/, "no stack trace");
  });
});
