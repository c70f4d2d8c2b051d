// Whether the agent can start with a configuration: the one check that both
// a start and an UpdateAgentConfig run, so an update the agent could not
// start with is refused before it is stored (an update pointing
// agent_server_ca at a missing file used to be answered 202 and lock the
// controller out at the next boot).
//
// What a start needs of the configuration and can be known beforehand: the
// CA file and the server key+certificate exist, parse, the key matches the
// certificate, and Node accepts them as a TLS server context; the listen
// address can be listened on (tried on a free port); the folders are
// absolute paths. A port another process holds can only be found by
// listening (the start reports it). haproxy_cmd is not checked: the agent
// starts without haproxy (its load balancers then fail to start, visibly).
import { readFileSync } from "node:fs";
import { createServer } from "node:net";
import { isAbsolute } from "node:path";
import { createSecureContext } from "node:tls";
import { X509Certificate } from "node:crypto";
import { parsePemBundle } from "../certs/pem-bundle.js";
import { pemBlocks } from "../certs/pem-blocks.js";
import type { AgentConfig } from "./config.js";
import type { TlsMaterial } from "./transport-options.js";

export class NotStartable extends Error {}

/** The configuration file could not be used at start; the last one that started the agent was used instead. */
export interface ConfigFallback {
  /** Why the configuration file could not be used. */
  reason: string;
  /** The file the agent started with instead. */
  usedFile: string;
}

/** Whether this machine can listen on `host` (a free port on it, closed at once): what the start will do. */
function canBind(host: string): Promise<string> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once("error", (e) => resolve((e as NodeJS.ErrnoException).code ?? e.message));
    s.listen(0, host, () => s.close(() => resolve("")));
  });
}

function read(file: string, what: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch (e) {
    throw new NotStartable(`${what} ${file} cannot be read: ${(e as Error).message}`);
  }
}

/** Checks `cfg` as a start would; returns the TLS material it would serve with. Throws NotStartable saying what is wrong. */
export async function checkStartable(cfg: AgentConfig): Promise<TlsMaterial> {
  for (const [what, dir] of [["base_path", cfg.stateDir], ["base_cert_dir", cfg.certDir]] as const) {
    if (!isAbsolute(dir)) throw new NotStartable(`${what} ${JSON.stringify(dir)} is not an absolute path`);
  }
  const bind = await canBind(cfg.bindHost);
  if (bind) throw new NotStartable(`bind_host ${cfg.bindHost} is not an address of this machine (${bind})`);
  const ca = read(cfg.serverCaFile, "agent_server_ca");
  const caCerts = pemBlocks(ca).filter((b) => b.type === "CERTIFICATE");
  if (!caCerts.length) throw new NotStartable(`agent_server_ca ${cfg.serverCaFile} holds no certificate`);
  for (const c of caCerts) {
    try {
      new X509Certificate(c.text);
    } catch (e) {
      throw new NotStartable(`agent_server_ca ${cfg.serverCaFile}: a certificate cannot be parsed: ${(e as Error).message}`);
    }
  }
  let bundle;
  try {
    bundle = await parsePemBundle(read(cfg.serverCertFile, "agent_server_cert"));
  } catch (e) {
    if (e instanceof NotStartable) throw e;
    const d = e as { message: string; details?: string };
    throw new NotStartable(`agent_server_cert ${cfg.serverCertFile}: ${d.message}${d.details ? ` (${d.details})` : ""}`);
  }
  const material = { ca, key: bundle.keyPem, cert: bundle.certPem };
  try {
    createSecureContext({ ca: material.ca, key: material.key, cert: material.cert, minVersion: "TLSv1.2" });
  } catch (e) {
    throw new NotStartable(`the TLS server cannot use agent_server_ca/agent_server_cert: ${(e as Error).message}`);
  }
  return material;
}
