import { pino, type Logger } from "pino";

export type { Logger };

// Secrets are redacted by key wherever they appear in a log object.
const redact = ["*.key", "*.pem", "*.heartbeat_key", "heartbeat_key", "pem", "key", "*.privateKey"];

export function createLogger(level = process.env.AMPHORA_LOG_LEVEL ?? "info"): Logger {
  return pino({ level, base: { svc: "amphora-agent" }, redact: { paths: redact, censor: "[redacted]" } });
}

/** A logger that drops everything, for library use and tests. */
export const silentLogger: Logger = pino({ level: "silent" });
