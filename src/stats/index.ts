// The stats module's public surface.
export * from "./model.js";
export { StatsCollector, type CollectedStats } from "./collector.js";
export { WatchHub, Subscription, MIN_INTERVAL_MS, MAX_INTERVAL_MS, type StatsUpdate, type WatchMode, type WatchOptions } from "./watch-hub.js";
export { DeltaTracker } from "./deltas.js";
export { parseShowStat, parseShowInfo, readRawStats } from "./haproxy-stats.js";
