// Exit codes of `amphora`, so scripts can tell what went wrong without
// parsing text. Documented in `amphora --help`.
import type { AmphoraError } from "../driver/index.js";

export const EXIT = {
  OK: 0,
  /** A bug or an unexpected local failure. */
  INTERNAL: 1,
  /** Bad command line, missing or unreadable local file, bad local input. */
  USAGE: 2,
  /** The agent could not be reached or did not answer: connection, TLS, timeout. */
  CONNECTION: 3,
  /** The agent answered with an error (invalid, not found, failed, unimplemented...). */
  SERVER: 4,
  /** Several agents: some succeeded, some failed (see the per-agent output). */
  PARTIAL: 5,
  /** Interrupted (Ctrl-C) before the agent answered. */
  INTERRUPTED: 130,
} as const;

/** Text for --help. */
export const EXIT_CODES_HELP = `exit codes:
  0  success
  1  unexpected internal error
  2  usage error: unknown command or option, missing argument, unreadable local file
  3  could not talk to the agent: connection refused/unreachable, TLS failure, timeout
  4  the agent answered with an error (invalid request, not found, failed, unimplemented)
  5  several agents: some succeeded and some failed
  130 interrupted (Ctrl-C) before the answer came; \`watch\` ends with 0 on Ctrl-C
`;

/** A mistake on the command line or in local input: exits with 2 and the usage hint. */
export class UsageError extends Error {
  constructor(message: string, readonly usage = "") {
    super(message);
    this.name = "UsageError";
  }
}

export function exitCodeFor(e: AmphoraError): number {
  return e.category === "server" ? EXIT.SERVER : e.category === "canceled" ? EXIT.INTERRUPTED : EXIT.CONNECTION;
}
