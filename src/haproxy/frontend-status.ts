// Frontend states out of `show stat` CSV. Columns are mapped by the header
// line, never by position.
import { retryWhileReexecuting } from "./master-cli.js";

export function frontendStatuses(csv: string): Map<string, string> {
  const out = new Map<string, string>();
  const lines = csv.split("\n").filter((l) => l.trim());
  const header = lines.find((l) => l.startsWith("# "));
  if (!header) return out;
  const cols = header.slice(2).split(",");
  const px = cols.indexOf("pxname");
  const sv = cols.indexOf("svname");
  const st = cols.indexOf("status");
  if (px < 0 || sv < 0 || st < 0) return out;
  for (const l of lines) {
    if (l.startsWith("#")) continue;
    const f = l.split(",");
    if (f[sv] === "FRONTEND") out.set(f[px]!, f[st]!);
  }
  return out;
}

/**
 * Frontend states of the running worker, read through the master CLI. While
 * a reload is under way the master refuses connections for a few ms, or
 * answers a worker command with an error instead of the CSV; both are
 * retried before giving up with the last error.
 */
export async function readFrontendStatuses(command: (cmd: string, timeoutMs: number) => Promise<string>): Promise<Map<string, string>> {
  return retryWhileReexecuting(async () => {
    const csv = await command("@1 show stat -1 1 -1", 2000);
    if (!/^# /m.test(csv)) throw new Error(`no stats header in the answer: ${JSON.stringify(csv.slice(0, 120))}`);
    return frontendStatuses(csv);
  });
}
