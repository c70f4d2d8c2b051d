// "did you mean ...?" for a mistyped command, subcommand or option: the
// known words closest by edit distance (typos, a swapped or missing letter),
// or those the typed word is a prefix of.

/** Damerau-Levenshtein distance (optimal string alignment): a swap of neighbours costs 1. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/** Known words close to `word`, best first (at most three). */
export function suggestions(word: string, known: Iterable<string>): string[] {
  const w = word.toLowerCase();
  const limit = Math.max(1, Math.min(3, Math.floor(w.length / 3)));
  const scored: [string, number][] = [];
  for (const k of new Set(known)) {
    const dist = editDistance(w, k.toLowerCase());
    if (dist <= limit || (w.length >= 2 && k.startsWith(w))) scored.push([k, k.startsWith(w) ? Math.min(dist, 0.5) : dist]);
  }
  return scored.sort((a, b) => a[1] - b[1] || a[0].localeCompare(b[0])).slice(0, 3).map(([k]) => k);
}

/** "\n\ndid you mean 'lb'?" or "" when nothing is close. */
export function didYouMean(word: string, known: Iterable<string>, show: (s: string) => string = (s) => s): string {
  const s = suggestions(word, known);
  if (!s.length) return "";
  return `did you mean ${s.map((x) => `'${show(x)}'`).join(" or ")}?\n`;
}
