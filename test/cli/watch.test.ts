// `amphora watch` as a child process: the live table on a terminal (a pty
// from util-linux `script`), Ctrl-C ending it cleanly, and the stream
// surviving an agent restart (same state dir and port) with a note on stderr.
import { test, type TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { freePort, startBackend, octaviaConfig, killHaproxiesUnder } from "../support/haproxy.js";
import { LoadBalancerService, LoadBalancerAction } from "../../src/gen/amphora/v1/load_balancer_pb.js";
import { clipToWidth } from "../../src/cli/output.js";

const REPO = join(import.meta.dirname, "..", "..");
const MAIN = join(REPO, "src", "cli", "main.ts");

function cleanEnv(extra: Record<string, string> = {}): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("AMPHORA_") && k !== "NO_COLOR") env[k] = v;
  return { ...env, XDG_CONFIG_HOME: join(tmpdir(), "amt-no-config"), ...extra };
}

/** An agent with one running load balancer on loopback haproxy. */
async function setup(t: TestContext, o: { stateDir?: string; listen?: string } = {}): Promise<{ agent: TestAgent; lbId: string; listenerId: string }> {
  const runDir = mkdtempSync(join(tmpdir(), "amt-run-"));
  const agent = await startTestAgent(o);
  const backend = await startBackend("watch-be");
  t.after(async () => {
    // The agent first (it would restart a haproxy that dies while it runs), then its haproxy.
    await agent.cleanup();
    await killHaproxiesUnder(agent.stateDir);
    await backend.close();
    rmSync(runDir, { recursive: true, force: true });
  });
  const lbId = randomUUID();
  const cfg = octaviaConfig({ lbId, runDir, listeners: [{ port: await freePort(), members: [{ port: backend.port }] }] });
  const lb = agent.client(LoadBalancerService);
  await lb.putConfig({ amphoraId: agent.config.amphoraId, lbId, config: cfg.text });
  await lb.controlLoadBalancer({ lbId, action: LoadBalancerAction.START });
  return { agent, lbId, listenerId: cfg.listeners[0]!.id };
}

interface Child {
  p: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<number>;
  waitFor(re: RegExp, what: "out" | "err", ms?: number): Promise<void>;
}

function start(cmd: string, args: string[], env: Record<string, string>): Child {
  const p = spawn(cmd, args, { cwd: REPO, env, stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  let err = "";
  p.stdout!.on("data", (d) => (out += d));
  p.stderr!.on("data", (d) => (err += d));
  const exit = new Promise<number>((r) => p.on("close", (code, sig) => r(code ?? (sig ? 128 : -1))));
  return {
    p,
    out: () => out,
    err: () => err,
    exit,
    async waitFor(re, what, ms = 20_000) {
      const end = Date.now() + ms;
      while (!re.test(what === "out" ? out : err)) {
        if (Date.now() > end) throw new Error(`timed out waiting for ${re} on std${what}\nstdout: ${out}\nstderr: ${err}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

function killOnExit(t: TestContext, c: Child): void {
  t.after(() => {
    if (c.p.exitCode === null && c.p.signalCode === null) c.p.kill("SIGKILL");
  });
}

test("on a terminal: a redrawn table with status colours, cursor restored at the end", async (t) => {
  const { agent, lbId, listenerId } = await setup(t);
  const cmd = [process.execPath, "--import", "tsx", MAIN, "--agent", agent.url, "--dev-state", agent.stateDir, "watch", "--interval", "200", "--count", "2"];
  // `script` gives the CLI a pseudo-terminal as stdout.
  const c = start("script", ["-qec", cmd.map((a) => `'${a}'`).join(" "), "/dev/null"], cleanEnv({ TERM: "xterm" }));
  killOnExit(t, c);
  assert.equal(await c.exit, 0, c.out() + c.err());
  const out = c.out();
  assert.equal(out.split("\x1b[H\x1b[2J").length - 1, 2, "the screen is cleared and redrawn per update");
  assert.match(out, /amphora watch/);
  assert.match(out, new RegExp(`${listenerId}\\s+${lbId}\\s+\\x1b\\[32mOPEN\\x1b\\[0m`), "OPEN in green");
  assert.match(out, /SESS\/S/);
  assert.ok(out.includes("\x1b[?25l") && out.includes("\x1b[?25h"), "cursor hidden, then shown again");

  // A terminal too short for the table: cut, with a note, instead of scrolling.
  const short = start("script", ["-qec", `stty rows 8 cols 200; ${cmd.map((a) => `'${a}'`).join(" ")}`, "/dev/null"], cleanEnv({ TERM: "xterm" }));
  killOnExit(t, short);
  assert.equal(await short.exit, 0, short.out() + short.err());
  assert.match(short.out(), /\.\.\. \d+ more lines \(narrow it with --lb\/--listener\)/);
  assert.doesNotMatch(short.out(), /MEMBER\s+POOL/, "the member table did not fit");

  // A terminal too narrow for the table: every line cut to its width, colours closed.
  const narrow = start("script", ["-qec", `stty rows 50 cols 40; ${cmd.map((a) => `'${a}'`).join(" ")}`, "/dev/null"], cleanEnv({ TERM: "xterm" }));
  killOnExit(t, narrow);
  assert.equal(await narrow.exit, 0, narrow.out() + narrow.err());
  const frame = narrow.out().split("\x1b[H\x1b[2J").at(-1)!;
  const shown = frame.replace(/\x1b\[[0-9;?]*[a-zA-Z]/g, "").split(/\r?\n/);
  assert.ok(shown.some((l) => l.endsWith("…")), "long lines are cut with an ellipsis");
  for (const l of shown) assert.ok(l.length <= 40, `line wider than the terminal: ${JSON.stringify(l)}`);
});

test("clipToWidth counts only visible characters and closes colours it cuts", () => {
  assert.equal(clipToWidth("short", 10), "short");
  assert.equal(clipToWidth("abcdefghij", 5), "abcd…");
  assert.equal(clipToWidth("\x1b[32mOPEN\x1b[0m and more", 6), "\x1b[32mOPEN\x1b[0m …");
  assert.equal(clipToWidth("\x1b[32mOPENING\x1b[0m", 4), "\x1b[32mOPE\x1b[0m…");
  assert.equal(clipToWidth("anything", 0), "anything", "unknown width: unchanged");
});

test("Ctrl-C ends watch with exit 0", async (t) => {
  const { agent, listenerId } = await setup(t);
  const c = start(process.execPath, ["--import", "tsx", MAIN, "--agent", agent.url, "--dev-state", agent.stateDir, "watch", "--interval", "200"], cleanEnv());
  killOnExit(t, c);
  await c.waitFor(new RegExp(`listener ${listenerId}`), "out");
  c.p.kill("SIGINT");
  assert.equal(await c.exit, 0, c.err());
  assert.equal(c.err(), "");
});

test("watch follows the agent through a restart on the same state dir and port", async (t) => {
  const port = await freePort();
  const stateDir = mkdtempSync(join(tmpdir(), "amt-state-"));
  let again: TestAgent | undefined;
  // Hooks run in the order they are added: this one, first, ends the
  // restarted agent, then haproxy, then removes the shared state dir.
  t.after(async () => {
    await again?.cleanup();
    await killHaproxiesUnder(stateDir);
    rmSync(stateDir, { recursive: true, force: true });
  });
  const { agent, listenerId } = await setup(t, { stateDir, listen: `127.0.0.1:${port}` });
  const c = start(process.execPath, ["--import", "tsx", MAIN, "--agent", agent.url, "--dev-state", stateDir, "watch", "--interval", "200"], cleanEnv());
  killOnExit(t, c);
  const line = new RegExp(`listener ${listenerId} .*status=OPEN`, "g");
  await c.waitFor(line, "out");
  await agent.cleanup();
  await c.waitFor(/reconnecting \(attempt 1/, "err");
  const before = (c.out().match(line) ?? []).length;
  again = await startTestAgent({ stateDir, listen: `127.0.0.1:${port}` });
  const end = Date.now() + 20_000;
  while ((c.out().match(line) ?? []).length < before + 2) {
    assert.ok(Date.now() < end, `no updates after the restart\nstdout: ${c.out()}\nstderr: ${c.err()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  c.p.kill("SIGINT");
  assert.equal(await c.exit, 0);
});

test("watch against an agent that cannot be reached at the start exits 3 at once, like any command", async (t) => {
  // An agent's state dir for credentials, and a port nothing listens on.
  const agent = await startTestAgent();
  t.after(() => agent.cleanup());
  const down = `https://127.0.0.1:${await freePort()}`;
  const c = start(process.execPath, ["--import", "tsx", MAIN, "--agent", down, "--dev-state", agent.stateDir, "watch", "--interval", "200"], cleanEnv());
  killOnExit(t, c);
  // The old behaviour retried forever: end it after a while so the test reports instead of hanging.
  const guard = setTimeout(() => c.p.kill("SIGKILL"), 30_000);
  t.after(() => clearTimeout(guard));
  assert.equal(await c.exit, 3, `stdout: ${c.out()}\nstderr: ${c.err()}`);
  assert.match(c.err(), /error: watch failed: .*ECONNREFUSED/);
  assert.match(c.err(), new RegExp(`hint: connection refused: is the agent running at ${down.replace(/[.]/g, "\\.")}\\?`));
  assert.doesNotMatch(c.err(), /reconnecting/);
});
