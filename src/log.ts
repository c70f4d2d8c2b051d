import { pino, type Logger } from "pino";

export type { Logger };

// Secrets are redacted by key wherever they appear in a log object.
const secretKeys = ["key", "pem", "privateKey", "keyPem", "serverKey", "heartbeat_key", "heartbeatKey", "password"];
export const redactPaths = [...secretKeys, ...secretKeys.map((k) => `*.${k}`), ...secretKeys.map((k) => `*.*.${k}`)];

export function createLogger(level = process.env.AMPHORA_LOG_LEVEL ?? "info"): Logger {
  // Lines go to stdout asynchronously: a line is written as soon as no
  // write is in flight, and lines that come meanwhile are written together,
  // so a busy agent makes a write per batch, not a blocking write() per
  // call (which was a quarter of a Connect call's CPU). Whatever is still
  // buffered is written synchronously when the process exits.
  return pino(
    { level, base: { svc: "amphora-agent" }, redact: { paths: redactPaths, censor: "[redacted]" } },
    pino.destination({ dest: 1, sync: false }),
  );
}

/** A logger that drops everything, for library use and tests. */
export const silentLogger: Logger = pino({ level: "silent" });
