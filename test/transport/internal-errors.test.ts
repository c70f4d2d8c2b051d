// Server faults (internal) answer without the host's absolute paths, over
// Connect, gRPC and REST alike, while the agent's log line keeps them: a real
// fs failure is provoked by a directory where a certificate file is expected
// (unlink and rename fail on it for root too).
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { randomUUID } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { create } from "@bufbuild/protobuf";
import { CertificateService } from "../../src/gen/amphora/v1/certificate_pb.js";
import { ErrorInfoSchema } from "../../src/gen/amphora/v1/errors_pb.js";
import { DomainError } from "../../src/errors.js";
import { toConnectError } from "../../src/transport/error-mapping.js";
import { answerableError, hideHostPaths } from "../../src/transport/internal-errors.js";
import { startTestAgent, type TestAgent } from "../support/agent.js";
import { capturingLogger } from "../support/log-sink.js";
import { rpcError } from "../support/lb-test.js";
import { octaviaConfig, selfSignedPem } from "../support/haproxy.js";
import { RestClient } from "./rest/https-client.js";

/** Any absolute path: a "/" at the start or after a quote, space or bracket. */
const ABSOLUTE = /(^|[\s'"`(=[])\/[^\s'"`]/;

test("hideHostPaths: state-dir paths relative to it, other absolute paths as <path>, the rest untouched", () => {
  const s = "/var/lib/amphora-agent";
  assert.equal(
    hideHostPaths("EISDIR: illegal operation on a directory, unlink '/var/lib/amphora-agent/certs/x/a.pem'", s),
    "EISDIR: illegal operation on a directory, unlink '<state>/certs/x/a.pem'",
  );
  assert.equal(
    hideHostPaths("rename '/var/lib/amphora-agent/lb/.haproxy.cfg.tmp' -> '/etc/haproxy/x.cfg'", `${s}/`),
    "rename '<state>/lb/.haproxy.cfg.tmp' -> '<path>'",
  );
  // haproxy's "[file:line]", a path at the end of a sentence, the state dir itself, a path escaping it.
  assert.equal(hideHostPaths("parsing [/var/lib/amphora-agent/lb/haproxy.cfg:12] : bad", s), "parsing [<state>/lb/haproxy.cfg:12] : bad");
  assert.equal(hideHostPaths("cannot open /usr/sbin/haproxy.", s), "cannot open <path>.");
  assert.equal(hideHostPaths("lock on /var/lib/amphora-agent failed", s), "lock on <state> failed");
  assert.equal(hideHostPaths("open /var/lib/amphora-agent/../x", s), "open <path>");
  assert.equal(hideHostPaths("open /var/lib/amphora-agent-old/x", s), "open <path>");
  // Not absolute paths: relative names, CIDRs, URLs, a lone slash, "and/or".
  for (const keep of ["lb1/haproxy.cfg", "192.0.2.0/24 and 2001:db8::/32", "see https://example.org/a/b", "a / b", "start and/or stop", "no slash"]) {
    assert.equal(hideHostPaths(keep, s), keep);
  }
});

test("answerableError rewrites server faults and unavailable (message and ErrorInfo details, reason kept) and leaves other codes alone", () => {
  const s = "/srv/state";
  const fault = toConnectError(new DomainError("failed", "Could not store the configuration", "EISDIR: illegal operation on a directory, rename '/srv/state/lb/.t' -> '/srv/state/lb/haproxy.cfg'", "STORE_FAILED"));
  const out = answerableError(fault, s);
  assert.equal(out.code, Code.Internal);
  assert.equal(out.rawMessage, "Could not store the configuration");
  const info = out.findDetails(ErrorInfoSchema)[0]!;
  assert.equal(info.details, "EISDIR: illegal operation on a directory, rename '<state>/lb/.t' -> '<state>/lb/haproxy.cfg'");
  assert.equal(info.reason, "STORE_FAILED");
  assert.equal(answerableError(new ConnectError("spawn /usr/bin/x ENOENT", Code.Unknown), s).rawMessage, "spawn <path> ENOENT");
  // unavailable describes the agent's side too (its haproxy's master socket).
  const down = toConnectError(new DomainError("unavailable", "haproxy master CLI unreachable: connect ECONNREFUSED /srv/state/lb/x/master.sock", "/srv/state/lb/x/master.sock"));
  assert.equal(answerableError(down, s).rawMessage, "haproxy master CLI unreachable: connect ECONNREFUSED <state>/lb/x/master.sock");
  assert.equal(answerableError(down, s).findDetails(ErrorInfoSchema)[0]!.details, "<state>/lb/x/master.sock");
  // A domain error that names what the caller sent stays as it is (not a server fault).
  const nf = toConnectError(new DomainError("not_found", "Certificate Not Found", "/x.pem of load balancer y"));
  assert.equal(answerableError(nf, s), nf);
  const plain = new ConnectError("nothing to hide", Code.Internal, undefined, [{ desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { details: "d" }) }]);
  assert.equal(answerableError(plain, s), plain);
});

describe("a real internal error over every protocol", () => {
  let agent: TestAgent;
  let log: ReturnType<typeof capturingLogger>;
  let rest: RestClient;
  let pemDir = "";
  const lbId = randomUUID();

  before(async () => {
    log = capturingLogger();
    agent = await startTestAgent({ logger: log.logger });
    rest = new RestClient(agent.url, agent);
    pemDir = mkdtempSync(join(tmpdir(), "amt-interr-"));
  });
  after(async () => {
    rest?.close();
    await agent?.cleanup();
    if (pemDir) rmSync(pemDir, { recursive: true, force: true });
  });

  /** A directory where the certificate file `name` of the load balancer is expected. */
  const directoryInstead = (name: string) => {
    const where = join(agent.stateDir, "certs", lbId, name);
    mkdirSync(where, { recursive: true });
    // Not empty, so nothing (rename, rmdir) could replace it by accident.
    writeFileSync(join(where, "keep"), "");
    return where;
  };

  /** The rpc log line of the last failed call of `method`. */
  const logged = (method: string) => {
    const l = log.lines.filter((x) => x.msg === "rpc" && x.method === `amphora.v1.CertificateService/${method}` && x.outcome === "Internal").at(-1);
    assert.ok(l, `an rpc line for ${method}`);
    return `${String(l.err)} ${String(l.details ?? "")}`;
  };

  test("Connect and gRPC: the answer names what failed, relative to the state dir; the log has the full path", async () => {
    const where = directoryInstead("dir-delete.pem");
    for (const kind of ["connect", "connect-json", "grpc"] as const) {
      const e = await rpcError(agent.client(CertificateService, kind).deleteCertificate({ lbId, filename: "dir-delete.pem" }));
      assert.equal(e.code, Code.Internal, kind);
      assert.doesNotMatch(e.rawMessage, ABSOLUTE, `${kind}: ${e.rawMessage}`);
      assert.ok(e.rawMessage.includes(`<state>/certs/${lbId}/dir-delete.pem`), `${kind}: ${e.rawMessage}`);
      assert.ok(logged("DeleteCertificate").includes(where), "the log line keeps the absolute path");
    }
  });

  test("REST: the 500 body names what failed without an absolute path; the log has it", async () => {
    const where = directoryInstead("dir-rest.pem");
    const r = await rest.request("DELETE", `/1.0/loadbalancer/${lbId}/certificates/dir-rest.pem`);
    assert.equal(r.status, 500);
    const body = r.json<{ message: string; details: string }>();
    assert.doesNotMatch(`${body.message} ${body.details}`, ABSOLUTE, r.text);
    assert.ok(body.message.includes(`<state>/certs/${lbId}/dir-rest.pem`), r.text);
    assert.ok(logged("DeleteCertificate").includes(where));

    // An upload whose file cannot replace a directory: the rename names two paths.
    directoryInstead("dir-put.pem");
    const pem = await selfSignedPem(pemDir, "interr.example");
    const put = await rest.request("PUT", `/1.0/loadbalancer/${lbId}/certificates/dir-put.pem`, { body: pem.bundle });
    assert.equal(put.status, 500);
    assert.doesNotMatch(put.text, ABSOLUTE, put.text);
    assert.match(put.text, /<state>\/certs\//);
    assert.ok(logged("PutCertificate").includes(join(agent.stateDir, "certs", lbId)));
  });

  test("a failed store (ErrorInfo details name the files): details without absolute paths, the log line has them", async () => {
    const lb = randomUUID();
    // haproxy -c accepts the upload; storing it fails: its file's place is taken by a directory.
    const cfg = join(agent.stateDir, "lb", lb, "haproxy.cfg");
    mkdirSync(cfg, { recursive: true });
    writeFileSync(join(cfg, "keep"), "");
    const text = octaviaConfig({ lbId: lb, runDir: pemDir, listeners: [{ port: 9, returnBody: "x", members: [] }] }).text;
    const r = await rest.request("PUT", `/1.0/loadbalancer/${randomUUID()}/${lb}/haproxy`, { body: text });
    assert.equal(r.status, 500, r.text);
    const body = r.json<{ message: string; details: string }>();
    assert.equal(body.message, "Could not store the configuration");
    assert.match(body.details, new RegExp(`<state>/lb/${lb}/haproxy\\.cfg`), body.details);
    assert.doesNotMatch(body.details, ABSOLUTE, body.details);
    const line = log.lines.filter((x) => x.msg === "rpc" && x.outcome === "Internal" && String(x.method).endsWith("/PutConfig")).at(-1);
    assert.ok(line, "an rpc line");
    assert.ok(String(line.details).includes(cfg), String(line.details));
  });
});
