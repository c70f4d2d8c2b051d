// Types of bin/build-fresh.js for the TypeScript callers (bench, scripts).
export declare const compiled: (root: string, rel: string) => string;
export declare const compiledCli: (root: string) => string;
export declare const compiledAgent: (root: string) => string;
export declare function buildIsFresh(root: string): boolean;
export declare function buildIfStale(root: string, o?: { force?: boolean }): boolean;
