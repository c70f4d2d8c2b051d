// The REST route table comes from the (amphora.v1.rest) options of the
// protos: it must cover exactly the routes of the reference document, pick
// literal segments over variables, and derive body limits from the rules.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { create, createFileRegistry, setExtension, type DescFile, type DescMethod } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema, MethodOptionsSchema, file_google_protobuf_descriptor } from "@bufbuild/protobuf/wkt";
import { rest, RestRouteSchema, file_amphora_v1_options } from "../../../src/gen/amphora/v1/options_pb.js";
import { normalizeTemplate, referenceRoutes } from "./reference-routes.js";
import { endpointsOf, NO_BODY_LIMIT, DEFAULT_JSON_LIMIT, RouteTable, splitPath } from "../../../src/transport/rest/route-table.js";

const GEN = join(import.meta.dirname, "../../../src/gen/amphora/v1");

/** Every method of every service of every generated amphora file. */
async function allMethods(): Promise<DescMethod[]> {
  const out: DescMethod[] = [];
  for (const f of readdirSync(GEN).filter((n) => n.endsWith("_pb.ts")).sort()) {
    const mod = (await import(pathToFileURL(join(GEN, f)).href)) as Record<string, unknown>;
    for (const [name, v] of Object.entries(mod)) {
      if (!name.startsWith("file_")) continue;
      for (const s of (v as DescFile).services) out.push(...s.methods);
    }
  }
  return out;
}

const normalize = normalizeTemplate;

test("the proto options declare exactly the reference's routes", async () => {
  const endpoints = endpointsOf(await allMethods());
  const ours = endpoints.map((e) => `${e.verb} ${normalize(e.template)}`).sort();
  const ref = referenceRoutes();
  assert.ok(ref.length >= 22, `parsed ${ref.length} rows from the reference`);
  assert.deepEqual(ours, ref);
});

test("literal segments win over variables, whatever the declaration order", async () => {
  const methods = await allMethods();
  for (const order of [methods, [...methods].reverse()]) {
    const table = new RouteTable(endpointsOf(order));
    const found = (verb: string, path: string) => {
      const m = table.match(verb, splitPath(path));
      return m.kind === "found" ? `${m.endpoint.method.name} ${[...m.params].map(([f, v]) => `${f.name}=${v}`).join(",")}` : m.kind;
    };
    assert.equal(found("PUT", "/1.0/loadbalancer/L/certificates/haproxy"), "PutCertificate lb_id=L,filename=haproxy");
    assert.equal(found("PUT", "/1.0/loadbalancer/A/L/haproxy"), "PutConfig amphora_id=A,lb_id=L");
    assert.equal(found("PUT", "/1.0/loadbalancer/L/reload"), "ControlLoadBalancer lb_id=L,action=reload");
    assert.equal(found("GET", "/1.0/loadbalancer/L/haproxy"), "GetConfig lb_id=L");
    assert.equal(found("GET", "/1.0/loadbalancer/L/certificates/c.pem"), "GetCertificateMd5 lb_id=L,filename=c.pem");
    assert.equal(found("PUT", "/1.0/vrrp/upload"), "PutVrrpConfig ");
    assert.equal(found("PUT", "/1.0/vrrp/start"), "ControlVrrp action=start");
    assert.equal(found("DELETE", "/1.0/listeners/L"), "DeleteLoadBalancer lb_id=L");
    assert.equal(found("GET", "/1.0/listeners"), "ListListeners ");
    assert.equal(found("GET", "/info"), "GetInfo ");
    assert.equal(found("GET", "/"), "GetApiVersion ");
    assert.equal(found("GET", "/1.0/nothing"), "none");
    assert.equal(found("GET", "/1.0/listeners/"), "none", "an empty segment fills no variable");
    const wrong = table.match("POST", splitPath("/1.0/listeners"));
    assert.deepEqual(wrong, { kind: "wrong-verb", allowed: ["GET"] });
    const del = table.match("PATCH", splitPath("/1.0/loadbalancer/L/certificates/c.pem"));
    assert.deepEqual(del, { kind: "wrong-verb", allowed: ["DELETE", "GET", "PUT"] });
  }
});

test("body kinds and limits come from the options and the protovalidate rules", async () => {
  const byName = new Map(endpointsOf(await allMethods()).map((e) => [`${e.method.name} ${e.template}`, e]));
  const get = (k: string) => {
    const e = byName.get(k);
    assert.ok(e, k);
    return e;
  };
  const putConfig = get("PutConfig /1.0/loadbalancer/{amphora_id}/{lb_id}/haproxy");
  assert.equal(putConfig.body.kind, "text");
  assert.equal(putConfig.bodyLimit, 8 * 1024 * 1024);
  assert.equal(putConfig.successStatus, 202);
  assert.equal(putConfig.etagField?.name, "md5");
  assert.equal(putConfig.ifMatchField?.name, "expected_md5");
  assert.equal(get("PutCertificate /1.0/loadbalancer/{lb_id}/certificates/{filename}").bodyLimit, 1024 * 1024);
  assert.equal(get("UpdateAgentConfig /1.0/config").bodyLimit, 65536);
  assert.equal(get("UpdateAgentConfig /1.0/config").invalidStatus, 500);
  assert.equal(putConfig.invalidStatus, 400);
  // A keepalived action the state does not allow answers 500 as Octavia's agent does; elsewhere 409.
  assert.equal(get("ControlVrrp /1.0/vrrp/{action}").preconditionStatus, 500);
  assert.equal(putConfig.preconditionStatus, 409);
  assert.equal(get("RotateAgentCertificate /1.0/certificate").bodyLimit, 262144);
  assert.equal(get("PlugVip /1.0/plug/vip/{vip}").body.kind, "json-object");
  assert.equal(get("PlugVip /1.0/plug/vip/{vip}").bodyLimit, DEFAULT_JSON_LIMIT);
  assert.equal(get("SetInterfaceRules /1.0/interface/{ip}/rules").body.kind, "json-list");
  assert.equal(get("GetInfo /info").bodyLimit, NO_BODY_LIMIT);
  assert.equal(get("GetConfig /1.0/loadbalancer/{lb_id}/haproxy").response.kind, "text");
  assert.equal(get("ListListeners /1.0/listeners").response.kind, "json-list");
  assert.equal(get("GetUdpListenerConfig /1.0/listeners/{listener_id}/udp_listener").response.kind, "text");
});

test("methods without a (rest) option get no route; streaming methods are not routed", async () => {
  const names = new Set(endpointsOf(await allMethods()).map((e) => e.method.name));
  for (const n of ["ListLoadBalancers", "GetLoadBalancerStatus", "GetStats", "WatchStats"]) assert.ok(!names.has(n), n);
});

/** Methods of a throw-away service whose methods carry the given (rest) options. */
function methodsWith(...routes: Record<string, unknown>[]): DescMethod[] {
  const fp = create(FileDescriptorProtoSchema, {
    name: "t/v1/t.proto", package: "t.v1", syntax: "proto3", dependency: ["amphora/v1/options.proto"],
    messageType: [
      { name: "Req", field: [{ name: "id", number: 1, type: 9, label: 1, jsonName: "id" }, { name: "n", number: 2, type: 13, label: 1, jsonName: "n" }] },
      { name: "Res", field: [] },
    ],
    service: [{
      name: "S",
      method: routes.map((r, i) => {
        const options = create(MethodOptionsSchema);
        setExtension(options, rest, create(RestRouteSchema, r));
        return { name: `M${i}`, inputType: ".t.v1.Req", outputType: ".t.v1.Res", options };
      }),
    }],
  });
  const deps: Record<string, DescFile> = { "amphora/v1/options.proto": file_amphora_v1_options, "google/protobuf/descriptor.proto": file_google_protobuf_descriptor };
  return createFileRegistry(fp, (name) => deps[name]).getService("t.v1.S")!.methods;
}

test("a wrong (rest) option fails the start with a clear error, not a request", () => {
  assert.deepEqual(endpointsOf(methodsWith({ method: "get", path: "/a/{id}" })).map((e) => `${e.verb} ${e.template}`), ["GET /a/{id}"]);
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ method: "GET", path: "/a/{nope}" }, /path names "nope", which t\.v1\.Req does not have/],
    [{ method: "PUT", path: "/a", body: "n" }, /body field n must be a string, bytes or repeated field/],
    [{ method: "PUT", path: "/a", body: "missing" }, /body names "missing"/],
    [{ method: "GET", path: "/a", responseBody: "x" }, /response_body names "x"/],
    [{ method: "FETCH", path: "/a" }, /unknown REST verb "FETCH"/],
    [{ method: "GET", path: "a" }, /must start with "\/"/],
    [{ method: "GET", path: "/a/{id}/{id}" }, /appears twice/],
    [{ method: "GET", path: "/a/x{id}" }, /bad segment/],
    [{ method: "GET", path: "/a", ifMatchField: "n" }, /if_match_field must be a string field/],
  ];
  for (const [route, err] of cases) assert.throws(() => endpointsOf(methodsWith(route)), err, JSON.stringify(route));
  // Two methods that would answer the same requests.
  assert.throws(() => new RouteTable(endpointsOf(methodsWith({ method: "GET", path: "/a/{id}" }, { method: "GET", path: "/a/{n}" }))), /match the same requests/);
  // Same shape, different verbs: fine.
  new RouteTable(endpointsOf(methodsWith({ method: "GET", path: "/a/{id}" }, { method: "PUT", path: "/a/{n}" })));
});
