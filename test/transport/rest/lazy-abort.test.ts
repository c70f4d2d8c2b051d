import { test } from "node:test";
import assert from "node:assert/strict";
import { create } from "@bufbuild/protobuf";
import { createContextValues } from "@connectrpc/connect";
import { LazyAbort } from "../../../src/transport/rest/lazy-abort.js";
import { completedReason, createInProcess } from "../../../src/transport/rest/in-process.js";
import { SystemService } from "../../../src/gen/amphora/v1/system_pb.js";

test("a lazy abort makes its signal on first read, aborted if the call already was", () => {
  const a = new LazyAbort();
  assert.equal(a.aborted, false);
  a.abort("first");
  a.abort("second");
  assert.equal(a.aborted, true);
  const s = a.signal;
  assert.equal(s.aborted, true);
  assert.equal(s.reason, "first");
  assert.equal(a.signal, s, "one signal per call");
});

test("a lazy reason is made only when a signal carries it", () => {
  let made = 0;
  const reason = () => (made++, "why");
  const unread = new LazyAbort();
  unread.abortWith(reason);
  assert.equal(made, 0, "nobody read the signal");
  assert.equal(unread.aborted, true);
  assert.equal(unread.signal.reason, "why");
  assert.equal(made, 1);
  const read = new LazyAbort();
  const s = read.signal;
  read.abortWith(reason);
  assert.equal(s.reason, "why");
  assert.equal(made, 2);
});

test("a lazy abort read before the abort fires its event once", () => {
  const a = new LazyAbort();
  const s = a.signal;
  let fired = 0;
  s.addEventListener("abort", () => fired++);
  assert.equal(s.aborted, false);
  a.abort("done");
  a.abort(new Error("later"));
  assert.equal(fired, 1);
  assert.equal(s.reason, "done");
});

test("a REST call's implementation sees its signal, aborted with the completed reason once the call ended", async () => {
  let seen: AbortSignal | undefined;
  let abortedDuring: boolean | undefined;
  const ip = createInProcess((router) => {
    router.service(SystemService, {
      getApiVersion: (_req, ctx) => {
        seen = ctx.signal;
        abortedDuring = ctx.signal.aborted;
        return { apiVersion: "x" };
      },
    });
  }, []);
  const m = SystemService.method.getApiVersion;
  await ip.call(m, create(m.input), createContextValues());
  assert.equal(abortedDuring, false);
  assert.equal(seen?.aborted, true);
  assert.equal(seen?.reason, completedReason());

  // A client gone before the implementation looks: the signal it reads is aborted.
  const gone = new LazyAbort();
  gone.abort();
  await ip.call(m, create(m.input), createContextValues(), gone);
  assert.equal(abortedDuring, true);
});
