// GET /metrics on the agent port (behind the same mutual TLS as the RPCs).
import type { ServerResponse } from "node:http";
import type { AgentMetrics } from "./agent-metrics.js";

/**
 * An HTTP handler the agent's server tries before its own 404 (false: not
 * this handler's request). Only what /metrics uses, so metrics imports
 * nothing from transport; transport's FallbackHandler accepts it.
 */
export type HttpFallback = (
  req: { url?: string; method?: string },
  res: { end(): unknown; end(body: string): unknown },
) => boolean | Promise<boolean>;

/** Answers GET /metrics (query string allowed); leaves every other request to the next fallback. */
export function metricsFallback(metrics: AgentMetrics): HttpFallback {
  return async (req, res) => {
    const path = (req.url ?? "").split("?")[0];
    if (path !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) return false;
    const body = await metrics.registry.metrics();
    (res as ServerResponse).writeHead(200, {
      "content-type": metrics.registry.contentType,
      "content-length": Buffer.byteLength(body),
      "cache-control": "no-store",
    });
    if (req.method === "HEAD") res.end();
    else res.end(body);
    return true;
  };
}
