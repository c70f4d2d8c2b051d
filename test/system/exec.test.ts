// The program wrapper on real processes: a timeout ends the whole process
// group (a wrapper script hanging in a grandchild included, SIGKILL for one
// that ignores SIGTERM), and a call never waits for a descendant that keeps
// the inherited stdio open after the program itself exited.
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { run } from "../../src/system/exec.js";
import { pidRuns, scratch, within } from "../support/processes.js";

test("a timeout ends a wrapper script and the grandchild it hangs in; the call answers and nothing it started remains", async (t) => {
  const s = scratch(t);
  const pidFile = join(s.dir, "sleep.pid");
  // The grandchild writes its own pid, then becomes `sleep 3600`, holding the wrapper's stdout and stderr.
  const wrapper = s.script("haproxy-wrapper", `echo starting\nsh -c 'echo $$ > "$1"; exec sleep 3600' sh ${pidFile}\necho never`);
  const r = await within(run(wrapper, ["-v"], { timeoutMs: 500 }), 20_000, "run");
  const sleepPid = await s.pidIn(pidFile);
  assert.equal(r.timedOut, true);
  assert.equal(r.exitCode, 124);
  assert.equal(r.stdout, "starting", "output written before the timeout is kept");
  assert.match(r.stderr, /timed out after 500 ms/);
  assert.equal(pidRuns(sleepPid), false, "the grandchild sleep was ended with its group");
});

test("a grandchild that ignores SIGTERM is killed after the grace period", async (t) => {
  const s = scratch(t);
  const pidFile = join(s.dir, "sleep.pid");
  const wrapper = s.script("stubborn", `trap '' TERM\nsh -c 'echo $$ > "$1"; exec sleep 3600' sh ${pidFile}`);
  const r = await within(run(wrapper, [], { timeoutMs: 300 }), 20_000, "run");
  const sleepPid = await s.pidIn(pidFile);
  assert.equal(r.timedOut, true);
  assert.equal(pidRuns(sleepPid), false, "SIGKILL ended what SIGTERM could not");
});

test("an abort ends the whole group like a timeout", async (t) => {
  const s = scratch(t);
  const pidFile = join(s.dir, "sleep.pid");
  const wrapper = s.script("aborted", `sh -c 'echo $$ > "$1"; exec sleep 3600' sh ${pidFile}`);
  const ac = new AbortController();
  const p = run(wrapper, [], { timeoutMs: 600_000, signal: ac.signal });
  const sleepPid = await s.pidIn(pidFile);
  ac.abort();
  const r = await within(p, 20_000, "run");
  assert.notEqual(r.exitCode, 0);
  assert.match(r.stderr, /aborted/);
  assert.equal(pidRuns(sleepPid), false);
});

test("a program that exits while a descendant keeps its stdout open answers at once; the descendant is not killed (daemons stay)", async (t) => {
  const s = scratch(t);
  const pidFile = join(s.dir, "bg.pid");
  // A careless daemon: backgrounded without closing the inherited pipes.
  const wrapper = s.script("leaves-child", `sleep 3600 &\necho $! > ${pidFile}\necho done\nexit 3`);
  const r = await within(run(wrapper, [], { timeoutMs: 600_000 }), 20_000, "run");
  const bg = await s.pidIn(pidFile);
  assert.equal(r.exitCode, 3);
  assert.equal(r.stdout, "done");
  assert.equal(r.timedOut, undefined);
  assert.equal(pidRuns(bg), true, "a normal exit never signals the group");
});

test("a program's own exit code, output, input and a missing program are reported as before", async () => {
  const r = await run("sh", ["-c", "read x; echo out:$x; echo err >&2; exit 7"], { input: "hello\n" });
  assert.deepEqual([r.exitCode, r.stdout, r.stderr], [7, "out:hello", "err"]);
  const missing = await run("/nonexistent/faults-program", []);
  assert.equal(missing.exitCode, 1);
  assert.match(missing.stderr, /ENOENT/);
  const killed = await run("sh", ["-c", "kill -KILL $$"]);
  assert.equal(killed.signal, "SIGKILL");
  assert.match(killed.stderr, /killed by SIGKILL/);
});

test("a descendant that writes to the inherited stderr after the program exited is not killed by SIGPIPE (haproxy's master does)", async (t) => {
  const s = scratch(t);
  const alive = join(s.dir, "alive");
  const pidFile = join(s.dir, "late.pid");
  // Like haproxy -D: the launcher exits, the daemon it left prints a notice a moment later and goes on.
  const launcher = s.script("launcher", `( echo $$ > /dev/null; sh -c 'echo $$ > "$1"; sleep 0.5; echo "[NOTICE] late" >&2; echo alive > "$2"' sh ${pidFile} ${alive} ) &\nexit 0`);
  const r = await within(run(launcher, [], { timeoutMs: 600_000 }), 20_000, "run");
  assert.equal(r.exitCode, 0);
  await s.pidIn(pidFile);
  const by = Date.now() + 10_000;
  while (!existsSync(alive) && Date.now() < by) await new Promise((res) => setTimeout(res, 50));
  assert.ok(existsSync(alive), "the daemon survived its late write");
});
