// Assembles the agent: configuration, TLS, domain modules, server. Used by
// main.ts and by tests (which start real agents on ephemeral ports).
import { existsSync, readFileSync, mkdirSync } from "node:fs";
import { join, resolve } from "node:path";
import { randomUUID } from "node:crypto";
import { createLogger, type Logger } from "../log.js";
import { defaultConfig, loadConfigFile, type AgentConfig } from "../config/config.js";
import { ConfigStore } from "../config/config-store.js";
import { ensureDevPki, type PkiPaths } from "./dev-pki.js";
import { createTlsControl } from "../transport/tls.js";
import { type TlsMaterial } from "../config/transport-options.js";
import { checkStartable, type ConfigFallback } from "../config/config-check.js";
import { createAgentServer, type AgentServer } from "../transport/server.js";
import { loggingInterceptor } from "../transport/interceptors.js";
import { answerableError } from "../transport/internal-errors.js";
import type { ConnectError } from "@connectrpc/connect";
import { callLimitInterceptor } from "../transport/call-limit.js";
import { preloadValidation } from "../transport/lazy-validate.js";
import { agentRoutes } from "./routes.js";
import type { AgentContext } from "../services/context.js";
import { writeFileAtomic } from "../system/fs-atomic.js";
import { acquireStateLock, type StateLock } from "./state-lock.js";
import { Conditions } from "../system/conditions.js";
import { LoadBalancerManager } from "../haproxy/manager.js";
import { CertificateStore } from "../certs/store.js";
import { NetworkPlumbing } from "../network/plumbing.js";
import { KeepalivedVrrp } from "../keepalived/vrrp.js";
import { LvsListeners } from "../keepalived/lvs.js";
import { restoreAtStart } from "./restore-network.js";
import { VipAdvertiser } from "../network/vip-advertisement.js";
import { createRestHandler } from "../transport/rest/handler.js";
import { registerOnce } from "../transport/rest/in-process.js";
import { startMonitoring } from "../metrics/monitoring.js";
import type { LoadBalancerCatalog } from "../haproxy/catalog.js";
import type { BackoffOptions } from "../haproxy/restart-backoff.js";
import { EventLog } from "../events/event-log.js";
import { publishCatalogEvents, type LingerOptions } from "../events/sources.js";
import { VrrpNotifyReader } from "../keepalived/vrrp-notify.js";

export const AGENT_VERSION = "0.1.0";

export interface AgentOptions {
  dev?: boolean;
  stateDir?: string;
  configFile?: string;
  /** "HOST:PORT"; port 0 picks a free one. */
  listen?: string;
  logLevel?: string;
  logger?: Logger;
  amphoraId?: string;
  /** Overrides applied after the config file. */
  overrides?: Partial<AgentConfig>;
  /** Tests and benchmarks: stats, /metrics and heartbeat watch this catalog instead of the agent's own load balancers. */
  catalog?: LoadBalancerCatalog;
  /** Delays before the agent starts again a haproxy that died (default: 1 s doubling up to 30 s); tests lengthen it. */
  restartBackoff?: BackoffOptions;
  /** When WatchEvents looks for haproxy workers that outlive a reload (default 10 s, then every 10 s); tests shorten it. */
  lingerWatch?: LingerOptions;
  /** Lag that ends a WatchEvents stream as a slow consumer (default half the ring); tests set it. */
  eventMaxLag?: number;
}

export interface RunningAgent {
  ctx: AgentContext;
  config: AgentConfig;
  host: string;
  port: number;
  url: string;
  pki?: PkiPaths;
  server: AgentServer;
  stop(graceMs?: number): Promise<void>;
}

export function parseListen(s: string): { host: string; port: number } {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(s);
  if (!m || Number(m[2]) > 65535) throw new Error(`--listen: expected HOST:PORT, got ${JSON.stringify(s)}`);
  return { host: m[1] || "0.0.0.0", port: Number(m[2]) };
}

async function devAmphoraId(stateDir: string): Promise<string> {
  const f = join(stateDir, "amphora-id");
  if (existsSync(f)) return readFileSync(f, "utf8").trim();
  const id = randomUUID();
  await writeFileAtomic(f, id + "\n");
  return id;
}

/** Where the configuration the agent last started with is kept: beside the file it came from. */
export const lastGoodPath = (file: string) => `${file}.last-good`;

/** What a start with `file` (or none) and the flags makes, dev PKI and amphora id filled in. */
async function resolveConfig(o: AgentOptions, file: string | undefined, lockStateDir?: (stateDir: string) => Promise<void>): Promise<{ config: AgentConfig; ignored: string[]; pki?: PkiPaths }> {
  let config = defaultConfig(o.stateDir ? resolve(o.stateDir) : o.dev ? resolve("state") : undefined, { dev: o.dev });
  let ignored: string[] = [];
  if (file) ({ config, ignored } = loadConfigFile(config, file));
  // Flags override the file.
  if (o.stateDir) config.stateDir = resolve(o.stateDir);
  if (o.listen) {
    const l = parseListen(o.listen);
    config.bindHost = l.host;
    config.bindPort = l.port;
  }
  if (o.amphoraId) config.amphoraId = o.amphoraId;
  Object.assign(config, o.overrides ?? {});
  if (!config.certDir) config.certDir = join(config.stateDir, "certs");
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 });
  await lockStateDir?.(config.stateDir);
  let pki: PkiPaths | undefined;
  if (o.dev) {
    if (!config.amphoraId) config.amphoraId = await devAmphoraId(config.stateDir);
    pki = (await ensureDevPki(join(config.stateDir, "pki"), config.amphoraId)).paths;
    if (!config.serverCaFile) config.serverCaFile = pki.ca;
    if (!config.serverCertFile) config.serverCertFile = pki.serverBundle;
  }
  if (!config.serverCaFile || !config.serverCertFile) {
    throw new Error("no TLS material: set [amphora_agent] agent_server_ca and agent_server_cert in --config, or use --dev");
  }
  if (!config.amphoraId) throw new Error("no amphora id: set [amphora_agent] amphora_id in --config, --amphora-id, or use --dev");
  return { config, ignored, pki };
}

/**
 * The configuration to start with, checked as a start needs it
 * (config-check.ts). When the configuration file (a stored update, or an
 * operator's edit) cannot start the agent and the file the agent last
 * started with is there (`<file>.last-good`), that one is used instead and
 * `fallback` says why: a bad update never locks the controller out.
 */
export async function buildConfig(o: AgentOptions, lockStateDir?: (stateDir: string) => Promise<void>): Promise<{
  config: AgentConfig; ignored: string[]; pki?: PkiPaths; configFile: string; tls: TlsMaterial; startedFrom?: string; fallback?: ConfigFallback;
}> {
  const base = defaultConfig(o.stateDir ? resolve(o.stateDir) : o.dev ? resolve("state") : undefined, { dev: o.dev });
  // Without --config, UpdateAgentConfig keeps its file in the state dir:
  // read it back so an update survives a restart.
  const stored = join(o.stateDir ? resolve(o.stateDir) : base.stateDir, "amphora-agent.conf");
  const file = o.configFile ?? (existsSync(stored) ? stored : undefined);
  const configFile = o.configFile ?? stored;
  // `lockStateDir` runs once the state directory is known and exists, before anything is written into it (once).
  const locked = new Set<string>();
  const lockOnce = async (dir: string) => {
    if (locked.has(dir)) return;
    await lockStateDir?.(dir);
    locked.add(dir);
  };
  try {
    const r = await resolveConfig(o, file, lockOnce);
    return { ...r, configFile, tls: await checkStartable(r.config), startedFrom: file };
  } catch (e) {
    const lastGood = file ? lastGoodPath(file) : "";
    if (!lastGood || !existsSync(lastGood)) throw e;
    const reason = (e as Error).message;
    const r = await resolveConfig(o, lastGood, lockOnce);
    return { ...r, configFile, tls: await checkStartable(r.config), fallback: { reason, usedFile: lastGood } };
  }
}

export async function startAgent(o: AgentOptions = {}): Promise<RunningAgent> {
  const logger = o.logger ?? createLogger(o.logLevel);
  // What the start could not do itself (a write on a full disk...): the agent serves anyway and reports it.
  const conditions = new Conditions(logger);
  // One agent per state directory, for the agent's whole life (see state-lock.ts).
  let lock: StateLock | undefined;
  let built: Awaited<ReturnType<typeof buildConfig>>;
  try {
    built = await buildConfig(o, async (dir) => {
      lock = await acquireStateLock(dir, { onStale: (was) => logger.info({ stale: was }, "removed the state directory lock of an agent that is gone") });
    });
  } catch (e) {
    await lock?.release();
    throw e;
  }
  const { config, ignored, pki, configFile, tls: tlsMaterial, startedFrom, fallback } = built;
  if (ignored.length) logger.info({ options: ignored }, "config options not used by this agent are ignored");
  if (fallback) {
    logger.error({ file: configFile, reason: fallback.reason, usedFile: fallback.usedFile }, "the configuration file cannot start the agent; started with the last configuration that did");
  }
  const store = new ConfigStore(config, configFile, logger, { dev: o.dev, fallback });
  // What has been started, undone in reverse order by stop() or when a
  // later step of the start fails (port in use...), so a failed start
  // leaves no timers, pollers or supervision behind.
  const undo: { what: string; fn: () => unknown }[] = [{ what: "state directory lock", fn: () => lock?.release() }];
  const unwind = async () => {
    for (const u of undo.splice(0).reverse()) {
      try {
        await u.fn();
      } catch (e) {
        logger.warn({ err: (e as Error).message, step: u.what }, "shutdown step failed");
      }
    }
  };
  let server: AgentServer | undefined;
  const tls = createTlsControl(config.serverCertFile, tlsMaterial, (opts) => server!.setSecureContext(opts));
  try {
    // Re-adopts load balancers whose haproxy survived an agent restart.
    const lbs = await LoadBalancerManager.open({
      stateDir: config.stateDir,
      certDir: config.certDir,
      settings: () => ({ haproxyCmd: store.current.haproxyCmd, netns: store.current.netns, amphoraId: store.current.amphoraId }),
      logger,
      restartBackoff: o.restartBackoff,
      conditions,
      policy: () => ({
        enabled: config.configPolicy, stateDir: config.stateDir, certDir: config.certDir, extraPaths: config.configPolicyPaths,
        // The agent's own TLS material and configuration, wherever they are.
        deniedPaths: [join(config.stateDir, "pki"), configFile, resolve(config.serverCaFile), resolve(config.serverCertFile)],
      }),
    });
    // haproxy keeps serving: stopping the agent never stops load balancers.
    undo.push({ what: "load balancer watch", fn: () => lbs.close() });
    // Before resume() and restoreAtStart: what they start is an event too.
    const events = new EventLog({ size: config.eventRingSize, maxLag: o.eventMaxLag });
    events.onPublish = (e) => logger.info({ seq: e.seq, kind: e.event.kind }, `event: ${e.summary}`);
    undo.push({ what: "event sources", fn: publishCatalogEvents(lbs, events, { ...o.lingerWatch, logger }) });
    const certs = new CertificateStore(config.certDir, lbs.lock);
    const network = new NetworkPlumbing(config.netns, config.stateDir, () => store.current.topology, logger);
    const keepalivedPolicy = () => ({ enabled: config.configPolicy, stateDir: config.stateDir, extraPaths: config.configPolicyPaths });
    const keepalived = new KeepalivedVrrp(config.stateDir, config.netns, logger, undefined, keepalivedPolicy);
    // keepalived reports VRRP state changes through a FIFO the agent reads (vrrp-notify.ts).
    const vrrpStates = new VrrpNotifyReader(keepalived.notifyFifo, (c) => events.publish({ kind: "vrrp_state_changed", ...c }), logger);
    await vrrpStates.open();
    keepalived.beforeStart = () => vrrpStates.ensure();
    undo.push({ what: "keepalived notify FIFO", fn: () => vrrpStates.close() });
    // keepalived's haproxy check script follows load balancer starts/stops (written before keepalived resumes).
    undo.push({ what: "keepalived check script", fn: await keepalived.checks.follow(lbs, undefined, conditions) });
    // SINGLE topology: gratuitous ARP / unsolicited NA for the VIPs after every start and reload.
    const advertiser = new VipAdvertiser({
      netns: () => store.current.netns, topology: () => store.current.topology, logger,
      configOf: async (lbId) => (await lbs.getConfig(lbId)).config,
    });
    undo.push({ what: "VIP announcements", fn: advertiser.follow(lbs) });
    const lvs = new LvsListeners(config.stateDir, config.netns, logger, undefined, undefined, keepalivedPolicy);
    await restoreAtStart(network, keepalived, logger, config.stateDir, { bindHost: config.bindHost, conditions });
    // After the namespace and plugs are back (haproxy binds in them): start
    // the load balancers that should run and do not (reboot, crash).
    await lbs.resume();
    // keepalived keeps running too; only its supervision ends with the agent.
    undo.push({ what: "keepalived supervision", fn: keepalived.supervise() });
    // Stats, /metrics and heartbeat (stopped with the agent, not with haproxy).
    const monitoring = startMonitoring({ catalog: o.catalog ?? lbs, config: store, logger, conditions });
    monitoring.metrics.attach({ events });
    const ctx: AgentContext = {
      logger, config: store, tls, agentVersion: AGENT_VERSION, lbs, certs, network, keepalived, lvs, monitoring, events, conditions,
    };
    // One registration and one interceptor list for Connect and REST alike.
    const routes = registerOnce(agentRoutes(ctx));
    // The log line keeps a server fault's full text; the caller gets it without host paths.
    const answer = (e: ConnectError) => answerableError(e, config.stateDir);
    const interceptors = [loggingInterceptor(logger, monitoring.metrics.observeCall, answer), callLimitInterceptor(config.limits.maxCalls)];
    const restApi = createRestHandler({ routes, interceptors, logger, onReject: monitoring.metrics.observeRestReject });
    server = createAgentServer({
      tls: tlsMaterial,
      logger,
      routes,
      interceptors,
      fallbacks: [monitoring.fallback, restApi.fallback],
      requestTimeoutMs: config.requestReadTimeoutS * 1000,
      limits: config.limits,
      clientCerts: config.clientCerts,
    });
    const s = server;
    let graceMs: number | undefined;
    undo.push({ what: "server", fn: () => s.close(graceMs) });
    // Before the server closes: open WatchStats streams end normally rather
    // than being cut when the grace period runs out.
    undo.push({ what: "monitoring", fn: () => monitoring.stop() });
    // Likewise WatchEvents streams: they end normally before the server closes.
    undo.push({ what: "event streams", fn: () => events.close() });
    const addr = await s.listen(config.bindHost, config.bindPort);
    const urlHost = addr.host === "0.0.0.0" || addr.host === "::" ? "127.0.0.1" : addr.host.includes(":") ? `[${addr.host}]` : addr.host;
    const url = `https://${urlHost}:${addr.port}`;
    logger.info({ url, amphoraId: config.amphoraId, stateDir: config.stateDir }, "agent listening");
    // This file started the agent: the one to fall back to if a later one cannot.
    if (startedFrom) {
      await writeFileAtomic(lastGoodPath(startedFrom), readFileSync(startedFrom, "utf8"), 0o600).catch((e: Error) =>
        logger.warn({ err: e.message }, "could not keep a copy of the configuration the agent started with"));
    }
    // The port is open; calls that come before this finishes wait for it.
    await preloadValidation();
    return {
      ctx, config, host: addr.host, port: addr.port, url, pki, server: s,
      async stop(ms?: number) {
        graceMs = ms;
        await unwind();
        logger.info("agent stopped");
      },
    };
  } catch (e) {
    await unwind();
    throw e;
  }
}
