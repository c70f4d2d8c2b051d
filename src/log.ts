import { pino, type Logger } from "pino";

export type { Logger };

// Secrets are redacted by key wherever they appear in a log object.
const secretKeys = ["key", "pem", "privateKey", "keyPem", "serverKey", "heartbeat_key", "heartbeatKey", "password"];
export const redactPaths = [...secretKeys, ...secretKeys.map((k) => `*.${k}`), ...secretKeys.map((k) => `*.*.${k}`)];

export function createLogger(level = process.env.AMPHORA_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { svc: "amphora-agent" }, redact: { paths: redactPaths, censor: "[redacted]" } });
}

/** A logger that drops everything, for library use and tests. */
export const silentLogger: Logger = pino({ level: "silent" });
