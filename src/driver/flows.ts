// The multi-call sequences a controller runs against one amphora, each as
// one function: apply a load balancer, delete it, wait for its listeners.
import { createHash } from "node:crypto";
import { Code, ConnectError } from "@connectrpc/connect";
import { LoadBalancerAction, type Listener, type LoadBalancerStatus } from "../gen/amphora/v1/load_balancer_pb.js";
import { AmphoraError, toAmphoraError } from "./errors.js";
import type { AmphoraClient } from "./client.js";
import { sleep } from "./backoff.js";

export interface CertificateFile {
  /** File name under the load balancer's certificate directory, e.g. "<listener_id>.pem". */
  filename: string;
  /** Key, certificate and chain in PEM. */
  pem: string;
}

export interface ApplyLoadBalancerInput {
  amphoraId: string;
  lbId: string;
  /** The haproxy.cfg text. */
  config: string;
  certificates?: CertificateFile[];
  /** Optimistic concurrency: fail with `aborted` unless the stored config has this md5. */
  expectedMd5?: string;
  signal?: AbortSignal;
}

export interface ApplyLoadBalancerResult {
  certificates: { filename: string; md5: string; uploaded: boolean }[];
  configMd5: string;
  configVersion: bigint;
  /** What was done to haproxy after the config was stored. */
  action: "reload" | "start";
  /** The config version haproxy serves afterwards (0 if the agent does not say). */
  servedVersion: bigint;
}

const md5 = (s: string) => createHash("md5").update(s).digest("hex");

/**
 * Uploads the certificates (skipping those whose md5 on the amphora already
 * matches), then the config, then reloads haproxy if it runs or starts it
 * if not. Stops at the first failure with an AmphoraError; nothing already
 * done is undone (each step keeps the agent's previous good state on failure).
 */
export async function applyLoadBalancer(client: AmphoraClient, input: ApplyLoadBalancerInput): Promise<ApplyLoadBalancerResult> {
  const { lbId, signal } = input;
  const certificates: ApplyLoadBalancerResult["certificates"] = [];
  for (const c of input.certificates ?? []) {
    const want = md5(c.pem);
    let have = "";
    try {
      have = (await client.certificate.getCertificateMd5({ lbId, filename: c.filename }, { signal })).md5sum;
    } catch (e) {
      if (ConnectError.from(e).code !== Code.NotFound) throw e;
    }
    if (have === want) {
      certificates.push({ filename: c.filename, md5: have, uploaded: false });
      continue;
    }
    const put = await client.certificate.putCertificate({ lbId, filename: c.filename, pem: c.pem }, { signal });
    certificates.push({ filename: c.filename, md5: put.md5sum || want, uploaded: true });
  }
  const stored = await client.loadBalancer.putConfig(
    { amphoraId: input.amphoraId, lbId, config: input.config, expectedMd5: input.expectedMd5 },
    { signal },
  );
  const running = await isRunning(client, lbId, signal);
  const action = running ? "reload" : "start";
  const res = await client.loadBalancer.controlLoadBalancer(
    { lbId, action: running ? LoadBalancerAction.RELOAD : LoadBalancerAction.START },
    { signal },
  );
  return { certificates, configMd5: stored.md5, configVersion: stored.version, action, servedVersion: res.version };
}

/** Whether haproxy of this load balancer runs, asked the most precise way the agent supports. */
async function isRunning(client: AmphoraClient, lbId: string, signal?: AbortSignal): Promise<boolean> {
  let status: LoadBalancerStatus | undefined;
  try {
    status = (await client.loadBalancer.getLoadBalancerStatus({ lbId }, { signal })).status;
  } catch (e) {
    const code = ConnectError.from(e).code;
    if (code === Code.NotFound) return false;
    if (code !== Code.Unimplemented) throw e;
    // Octavia-era agents: a listener of this load balancer is ACTIVE only when haproxy runs.
    const { listeners } = await client.loadBalancer.listListeners({}, { signal });
    return listeners.some((l) => l.lbId === lbId && l.status === "ACTIVE");
  }
  return status?.state === "RUNNING";
}

/** Stops haproxy and removes config, certificates and sockets; succeeds for an unknown load balancer. */
export async function deleteLoadBalancer(client: AmphoraClient, lbId: string, o: { signal?: AbortSignal } = {}): Promise<void> {
  await client.loadBalancer.deleteLoadBalancer({ lbId }, { signal: o.signal });
}

export interface WaitForListenersInput {
  /** Wait for every listener of this load balancer (at least one must exist). */
  lbId?: string;
  /** Wait for exactly these listeners. */
  listenerIds?: string[];
  /** Overall deadline (default 30 s). */
  timeoutMs?: number;
  /** Poll interval (default 250 ms). */
  intervalMs?: number;
  signal?: AbortSignal;
}

/**
 * Polls ListListeners until every wanted listener is ACTIVE and returns
 * them. Fails at once when one is in ERROR (its config does not parse), and
 * with `deadline_exceeded` naming the laggards when time runs out.
 */
export async function waitForListenersActive(client: AmphoraClient, input: WaitForListenersInput): Promise<Listener[]> {
  if (!input.lbId && !input.listenerIds?.length) throw new TypeError("waitForListenersActive: give lbId or listenerIds");
  const timeoutMs = input.timeoutMs ?? 30_000;
  const deadline = Date.now() + timeoutMs;
  const wanted = new Set(input.listenerIds ?? []);
  let last = wanted.size ? [...wanted].map((id) => `${id}=MISSING`).join(", ") : "no listeners seen";
  const timedOut = () =>
    new AmphoraError(new ConnectError(`listeners not ACTIVE after ${timeoutMs} ms: ${last}`, Code.DeadlineExceeded), {
      agent: client.baseUrl,
      procedure: "waitForListenersActive",
      // The agent answered; its listeners just are not ACTIVE.
      category: "server",
      hint: "is the load balancer started? see `amphora lb status`",
    });
  for (;;) {
    // Each poll gets what is left of the budget, but never so little that a
    // busy agent cannot answer at all (the overall wait may overrun by that).
    const pollMs = Math.min(client.timeoutMs || Infinity, Math.max(deadline - Date.now(), 500));
    let listeners: Listener[];
    try {
      ({ listeners } = await client.loadBalancer.listListeners({}, { signal: input.signal, timeoutMs: pollMs }));
    } catch (e) {
      if (ConnectError.from(e).code === Code.DeadlineExceeded && Date.now() >= deadline) throw timedOut();
      throw e;
    }
    const mine = listeners.filter((l) => (wanted.size ? wanted.has(l.uuid) : l.lbId === input.lbId));
    const missing = [...wanted].filter((id) => !mine.some((l) => l.uuid === id));
    const failed = mine.filter((l) => l.status === "ERROR");
    if (failed.length) {
      throw new AmphoraError(
        new ConnectError(`listener(s) in ERROR: ${failed.map((l) => l.uuid).join(", ")}`, Code.FailedPrecondition),
        { agent: client.baseUrl, procedure: "waitForListenersActive", category: "server", hint: "the stored haproxy config does not parse: check it with `amphora config get`" },
      );
    }
    if (mine.length && !missing.length && mine.every((l) => l.status === "ACTIVE")) return mine;
    last = [...mine.filter((l) => l.status !== "ACTIVE").map((l) => `${l.uuid}=${l.status}`), ...missing.map((id) => `${id}=MISSING`)].join(", ") || "no listeners seen";
    if (Date.now() + (input.intervalMs ?? 250) > deadline) throw timedOut();
    try {
      await sleep(input.intervalMs ?? 250, input.signal);
    } catch (e) {
      throw toAmphoraError(new ConnectError("wait canceled", Code.Canceled, undefined, undefined, e), { agent: client.baseUrl, procedure: "waitForListenersActive" });
    }
  }
}
