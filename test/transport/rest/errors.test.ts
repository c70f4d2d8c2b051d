// Domain errors -> Connect codes (src/transport/error-mapping.ts) -> the HTTP
// status and {message, details} body the REST layer answers with.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { DomainError, type ErrorKind } from "../../../src/errors.js";
import { toConnectError } from "../../../src/transport/error-mapping.js";
import { HTTP_STATUS, restError } from "../../../src/transport/rest/errors.js";

test("every domain error kind maps to its documented HTTP status", () => {
  const expected: Record<ErrorKind, number> = {
    invalid: 400,
    not_found: 404,
    conflict: 409,
    precondition: 409,
    exhausted: 503,
    unavailable: 503,
    unimplemented: 500,
    out_of_range: 400,
    failed: 500,
  };
  for (const [kind, status] of Object.entries(expected)) {
    const e = restError(toConnectError(new DomainError(kind as ErrorKind, `m-${kind}`, `d-${kind}`, "R")), "Invalid request");
    assert.deepEqual(e, { status, message: `m-${kind}`, details: `d-${kind}` }, kind);
  }
  // Every Connect code has a status the Octavia controller's driver raises on
  // (octavia/amphorae/drivers/haproxy/exceptions.py check_exception); any
  // other status would read as success there. Canceled: the client is gone.
  const raised = [400, 401, 403, 404, 405, 409, 500, 503];
  for (const c of Object.values(Code).filter((v): v is Code => typeof v === "number" && v !== Code.Canceled)) {
    assert.ok(raised.includes(HTTP_STATUS[c]), `${Code[c]} -> ${HTTP_STATUS[c]}`);
  }
  assert.equal(HTTP_STATUS[Code.AlreadyExists], 409);
  assert.equal(HTTP_STATUS[Code.Aborted], 409);
});

test("a validation failure answers with the route's message and the violation text", () => {
  const err = new ConnectError("lb_id: value must be a valid UUID [string.uuid]", Code.InvalidArgument, undefined, [
    { desc: ViolationsSchema, value: create(ViolationsSchema, {}) },
  ]);
  assert.deepEqual(restError(err, "Invalid Request"), { status: 400, message: "Invalid Request", details: "lb_id: value must be a valid UUID [string.uuid]" });
  // A route may answer invalid requests with another status (PUT /1.0/config: 500); other codes keep theirs.
  assert.equal(restError(err, "Unable", 500).status, 500);
  assert.equal(restError(toConnectError(new DomainError("invalid", "bad", "why")), "x", 500).status, 500);
  assert.equal(restError(toConnectError(new DomainError("not_found", "gone")), "x", 500).status, 404);
  // And failed_precondition (PUT /1.0/vrrp/{action}: 500); the body is unchanged.
  const pre = toConnectError(new DomainError("precondition", "Failed to start keepalived", "no keepalived configuration has been uploaded", "NOT_CONFIGURED"));
  assert.deepEqual(restError(pre, "x", 400, 500), { status: 500, message: "Failed to start keepalived", details: "no keepalived configuration has been uploaded" });
  assert.equal(restError(pre, "x").status, 409);
  assert.equal(restError(toConnectError(new DomainError("failed", "f")), "x", 400, 500).status, 500);
  assert.equal(restError(toConnectError(new DomainError("conflict", "c")), "x", 400, 500).status, 409);
  // Without violations or ErrorInfo (e.g. the router's own unimplemented): the error's message.
  assert.deepEqual(restError(new ConnectError("not implemented", Code.Unimplemented), "x"), { status: 500, message: "not implemented", details: "" });
  assert.deepEqual(restError(new Error("boom"), "x"), { status: 500, message: "boom", details: "" });
});
