// The REST layer's calls run through a router built from the agent's own
// routes and interceptors: the same implementation objects, every
// interceptor, protovalidate, and the context values (protocol "rest", the
// peer's certificate subject) the logging interceptor reads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Code, ConnectError, createConnectRouter, createContextValues, type ConnectRouter, type Interceptor } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { ViolationsSchema } from "@bufbuild/protovalidate/gen/buf/validate/validate_pb.js";
import { SystemService } from "../../../src/gen/amphora/v1/system_pb.js";
import { CertificateService } from "../../../src/gen/amphora/v1/certificate_pb.js";
import { peerSubjectKey, protocolKey } from "../../../src/transport/interceptors.js";
import { createInProcess, registerOnce } from "../../../src/transport/rest/in-process.js";

test("registerOnce: the routes run once and every router gets the same implementation objects", () => {
  let built = 0;
  const impls: object[] = [];
  const routes = registerOnce((router: ConnectRouter) => {
    built++;
    const impl = { getApiVersion: () => ({ apiVersion: "1.0" }) };
    impls.push(impl);
    router.service(SystemService, impl);
  });
  const r1 = createConnectRouter();
  const r2 = createConnectRouter();
  routes(r1);
  routes(r2);
  assert.equal(built, 1);
  assert.equal(impls.length, 1);
  assert.equal(r1.handlers.length, r2.handlers.length);
  assert.ok(r1.handlers.some((h) => h.method.name === "GetApiVersion"));
});

test("in-process calls: interceptors see protocol rest and the peer; validation runs after them", async () => {
  const seen: string[] = [];
  const recorder: Interceptor = (next) => async (req) => {
    seen.push(`${req.method.name} ${req.contextValues.get(protocolKey)} ${req.contextValues.get(peerSubjectKey)}`);
    try {
      return await next(req);
    } catch (e) {
      seen.push(`error ${Code[ConnectError.from(e).code]}`);
      throw e;
    }
  };
  let implCalls = 0;
  const ip = createInProcess((router) => {
    router.service(SystemService, {
      getApiVersion: (_req, ctx) => ({ apiVersion: `${ctx.values.get(protocolKey)}|${ctx.values.get(peerSubjectKey)}` }),
    });
    router.service(CertificateService, {
      getCertificateMd5: () => {
        implCalls++;
        return { md5sum: "x" };
      },
    });
  }, [recorder]);
  const method = SystemService.method.getApiVersion;
  const values = createContextValues().set(protocolKey, "rest").set(peerSubjectKey, "CN=controller");
  const res = (await ip.call(method, create(method.input), values)) as unknown as { apiVersion: string };
  assert.equal(res.apiVersion, "rest|CN=controller");

  // An invalid request is refused by protovalidate before the implementation runs.
  const md5 = CertificateService.method.getCertificateMd5;
  const err = await ip
    .call(md5, create(md5.input, { lbId: "nope", filename: "a.pem" }), createContextValues().set(protocolKey, "rest"))
    .then(() => assert.fail("expected a validation error"), (e: unknown) => e as ConnectError);
  assert.ok(err instanceof ConnectError);
  assert.equal(err.code, Code.InvalidArgument);
  assert.match(err.rawMessage, /lb_id/);
  assert.equal(err.findDetails(ViolationsSchema).length, 1);
  assert.equal(implCalls, 0);
  assert.deepEqual(seen, ["GetApiVersion rest CN=controller", "GetCertificateMd5 rest ", "error InvalidArgument"]);
  assert.ok(ip.methods.some((m) => m.name === "GetCertificateMd5"));
});
