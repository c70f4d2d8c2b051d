// The route rows of the reference document, for tests that must cover them.
import { readFileSync } from "node:fs";

export const REFERENCE = "/work/shared/reference/amphora-api-v1.md";

/** Path template with variables unnamed and the ".pem" suffix dropped. */
export const normalizeTemplate = (p: string) => p.replace(/\{[a-z_]+\}(\.pem)?/g, "{}");

/** "VERB /path/{}/..." for every route row (a row with two paths gives two). */
export function referenceRoutes(): string[] {
  const rows: string[] = [];
  for (const line of readFileSync(REFERENCE, "utf8").split("\n")) {
    const m = /^\| (GET|PUT|POST|DELETE) \| (.+?) \|/.exec(line);
    if (!m) continue;
    for (const p of m[2].matchAll(/`([^`]+)`/g)) rows.push(`${m[1]} ${normalizeTemplate(p[1])}`);
  }
  return rows.sort();
}
