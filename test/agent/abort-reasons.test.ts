// The agent's stackless default abort reason: still a fresh DOMException
// "AbortError" per abort (as the platform makes it), only without the stack
// trace; explicit reasons pass through; installing twice wraps once. (Runs
// in this test file's own process, whose globals it changes.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { installStacklessAbortReasons, stacklessAbortError } from "../../src/agent/abort-reasons.js";

function reasonOf(abort: (c: AbortController) => void): unknown {
  const c = new AbortController();
  abort(c);
  return c.signal.reason;
}

test("abort() without a reason: a new stackless AbortError each time; explicit reasons untouched", () => {
  const platform = reasonOf((c) => c.abort()) as DOMException;
  assert.match(platform.stack ?? "", /\n\s+at /, "the platform's default reason has a stack (what this saves)");

  installStacklessAbortReasons();
  const wrapped = AbortController.prototype.abort;
  installStacklessAbortReasons();
  assert.equal(AbortController.prototype.abort, wrapped, "a second install changes nothing");

  const limit = Error.stackTraceLimit;
  const a = reasonOf((c) => c.abort()) as DOMException;
  const b = reasonOf((c) => c.abort(undefined)) as DOMException;
  assert.equal(Error.stackTraceLimit, limit, "the stack trace limit is restored");
  for (const r of [a, b]) {
    assert.ok(r instanceof DOMException);
    assert.equal(r.name, platform.name);
    assert.equal(r.message, platform.message);
    assert.equal(r.code, platform.code);
    assert.doesNotMatch(r.stack ?? "", /\n\s+at /);
  }
  assert.notEqual(a, b, "each abort gets its own reason");

  const mine = new Error("mine");
  assert.equal(reasonOf((c) => c.abort(mine)), mine);
  assert.equal(reasonOf((c) => c.abort(null)), null);

  // Listeners still run, once, and see the reason.
  const c = new AbortController();
  const seen: unknown[] = [];
  c.signal.addEventListener("abort", () => seen.push(c.signal.reason));
  c.abort();
  c.abort(mine);
  assert.equal(seen.length, 1);
  assert.ok(seen[0] instanceof DOMException);
  assert.equal(c.signal.reason, seen[0]);
});

test("stacklessAbortError restores the stack trace limit even at 0", () => {
  const before = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    stacklessAbortError();
    assert.equal(Error.stackTraceLimit, 0);
  } finally {
    Error.stackTraceLimit = before;
  }
  stacklessAbortError();
  assert.equal(Error.stackTraceLimit, before);
});
