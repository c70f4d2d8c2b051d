// One agent per state directory: a second agent (process or in-process)
// refuses to start naming the holder; a lock left by a killed agent, by a
// pid now used by another process, from another boot, or not a lock at all
// does not block a restart; two starters racing for a stale lock end with
// one holder.
import { test } from "node:test";
import assert from "node:assert/strict";
import { lstatSync, mkdtempSync, readlinkSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startTestAgent } from "../support/agent.js";
import { failedStart, killHard, startProcess } from "../support/agent-process.js";
import { acquireStateLock, formatHolder, LOCK_NAME, processStart, StateDirLocked, thisProcess } from "../../src/agent/state-lock.js";

function stateDir(t: { after(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), "faults-lock-"));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

test("a second agent process on the same state directory exits 1 naming the holder; after the holder is killed -9 a restart takes over", async (t) => {
  const dir = stateDir(t);
  const args = ["--dev", "--state-dir", dir, "--listen", "127.0.0.1:0"];
  const first = await startProcess(args);
  const second = await failedStart(args);
  assert.equal(second.code, 1);
  const started = processStart(first.proc.pid!)!;
  assert.match(second.stderr, new RegExp(`state directory ${dir} is in use by another agent: pid ${first.proc.pid}, started \\d{4}-\\d\\d-\\d\\dT`));
  assert.equal(readlinkSync(join(dir, LOCK_NAME)).split(":").slice(0, 2).join(":"), `${first.proc.pid}:${started}`);

  // Killed: the lock stays behind, stale; the next start removes it and serves.
  await killHard(first.proc);
  assert.ok(lstatSync(join(dir, LOCK_NAME)).isSymbolicLink(), "a killed agent leaves its lock");
  const third = await startProcess(args);
  assert.match(third.stdout(), /removed the state directory lock of an agent that is gone/);
  assert.match(readlinkSync(join(dir, LOCK_NAME)), new RegExp(`^${third.proc.pid}:`));
  // A graceful stop releases it.
  third.proc.kill("SIGTERM");
  await new Promise((r) => third.proc.once("exit", r));
  assert.equal(existsSync(join(dir, LOCK_NAME)), false);
});

test("in one process: a second agent on a held directory is refused before writing anything; it starts once the first stopped", async (t) => {
  const dir = stateDir(t);
  const a = await startTestAgent({ stateDir: dir });
  t.after(() => a.cleanup());
  const second = startTestAgent({ stateDir: dir });
  second.then((b) => b.cleanup(), () => {}); // (if it wrongly started)
  await assert.rejects(second, (e: unknown) => {
    assert.ok(e instanceof StateDirLocked, String(e));
    assert.equal(e.holder.pid, process.pid);
    assert.equal(e.reason, "STATE_DIR_LOCKED");
    return true;
  });
  assert.match(readlinkSync(join(dir, LOCK_NAME)), new RegExp(`^${process.pid}:`), "the holder's lock untouched");
  await a.cleanup();
  const b = await startTestAgent({ stateDir: dir });
  await b.cleanup();
  assert.equal(existsSync(join(dir, LOCK_NAME)), false, "released by stop");
});

test("stale locks do not block: a reused pid (live, other start time), another boot, garbage, a plain file", async (t) => {
  const me = thisProcess();
  const stale = [
    // pid 1 is alive, but it is not the process that took this lock.
    formatHolder({ pid: 1, startTicks: processStart(1)! + 12345, bootId: me.bootId }),
    // This very process, but the lock is from another boot.
    formatHolder({ ...me, bootId: "0".repeat(32) }),
    "not a holder",
  ];
  for (const target of stale) {
    const dir = stateDir(t);
    symlinkSync(target, join(dir, LOCK_NAME));
    const seen: string[] = [];
    const lock = await acquireStateLock(dir, { onStale: (w) => seen.push(w) });
    assert.deepEqual(seen, [target]);
    assert.equal(readlinkSync(lock.path), formatHolder(me));
    await lock.release();
  }
  const dir = stateDir(t);
  writeFileSync(join(dir, LOCK_NAME), "1234\n");
  const lock = await acquireStateLock(dir);
  assert.equal(readlinkSync(lock.path), formatHolder(me));
  await lock.release();
});

test("starters racing for one stale lock: exactly one holds it", async (t) => {
  for (let round = 0; round < 20; round++) {
    const dir = stateDir(t);
    symlinkSync(formatHolder({ pid: 1, startTicks: 1, bootId: "0".repeat(32) }), join(dir, LOCK_NAME));
    const results = await Promise.allSettled([acquireStateLock(dir), acquireStateLock(dir), acquireStateLock(dir)]);
    const won = results.filter((r) => r.status === "fulfilled");
    assert.equal(won.length, 1, `round ${round}: ${results.map((r) => r.status === "rejected" ? String(r.reason) : "held").join("; ")}`);
    for (const r of results) if (r.status === "rejected") assert.ok(r.reason instanceof StateDirLocked, String(r.reason));
    await (won[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireStateLock>>>).value.release();
  }
});
