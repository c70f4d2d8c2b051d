// Remembers, per line index, what the previous `show stat` answer of one
// load balancer said and what was built from it, so that a line that did
// not change is not decoded, split and parsed again. Lines are compared as
// bytes where they lie in the answer (see StatTable). Most objects of a big load
// balancer do not move between two polls, but every server line differs in
// one field at every poll: lastchg (seconds since the last status change)
// counts up. So a line is compared with its predecessor with that one field
// left out, and the caller reads the new lastchg separately (lastchg()).
//
// A hit promises only that the line's other bytes are identical to the
// previous poll's line at the same index; what that is worth (e.g. the same
// worker, so the same totals) is for the caller to decide and to clear()
// when it no longer holds.

/**
 * A copy of `s` that does not keep alive the string it was cut from. V8
 * makes a slice of a long string (13 characters and more) a view of the
 * whole original: a remembered line, or a member id read from it, kept one
 * whole `show stat` answer (3.7 MB for a big load balancer) alive per poll
 * it came from (25 MB of them seen in a heap snapshot of a watched agent).
 * Concatenating forces a flat copy of the piece alone.
 */
export function detach(s: string): string {
  return s.length < 13 ? s : (" " + s).slice(1);
}

interface Entry<T> {
  /** The line up to the lastchg field, and from the comma after it (copies). */
  prefix: Buffer;
  suffix: Buffer;
  /** The line has no lastchg field: prefix is all of it. */
  whole: boolean;
  value: T;
}

const COMMA = 44;

export class LineMemo<T> {
  private entries: (Entry<T> | undefined)[] = [];
  private header: string | undefined;
  private lastchgCol = -1;
  /** The line last located (data, start, end) and its lastchg field's bounds. */
  private data: Buffer | undefined;
  private lineStart = -1;
  private lineEnd = -1;
  private start = -1;
  private end = -1;
  /** Whether the line last located has a lastchg field. */
  private hasField = false;
  hits = 0;
  misses = 0;

  clear(): void {
    this.entries = [];
    this.header = undefined;
  }

  /**
   * Starts a poll. Another header line means columns may have moved: a
   * remembered line no longer means the same values.
   */
  begin(header: string, lastchgCol: number, lineCount: number): void {
    if (header !== this.header || lastchgCol !== this.lastchgCol) {
      this.entries = [];
      this.header = detach(header);
      this.lastchgCol = lastchgCol;
    }
    // Lines past the end of this answer are of a config that changed.
    if (this.entries.length > lineCount) this.entries.length = lineCount;
    // Not kept across polls: it would hold the previous answer.
    this.data = undefined;
  }

  private located(d: Buffer, s: number, e: number): boolean {
    return d === this.data && s === this.lineStart && e === this.lineEnd;
  }

  private setLine(d: Buffer, s: number, e: number): void {
    this.data = d;
    this.lineStart = s;
    this.lineEnd = e;
  }

  /** Finds the lastchg field of line d[s, e) (the whole line is compared if there is none). */
  private locate(d: Buffer, s: number, e: number): void {
    if (this.located(d, s, e)) return;
    this.setLine(d, s, e);
    this.start = this.end = e;
    this.hasField = false;
    if (this.lastchgCol < 0) return;
    let p = s;
    for (let k = 0; k < this.lastchgCol; k++) {
      const c = d.indexOf(COMMA, p);
      if (c < 0 || c >= e) return; // a short line: no such field, compare it whole
      p = c + 1;
    }
    const c = d.indexOf(COMMA, p);
    this.start = p;
    this.end = c < 0 || c >= e ? e : c;
    this.hasField = true;
  }

  /** What was stored for line i if line d[s, e) equals the previous one there, lastchg aside. */
  lookup(i: number, d: Buffer, s: number, e: number): T | undefined {
    const v = this.probe(i, d, s, e);
    if (v === undefined) this.misses++;
    else this.hits++;
    return v;
  }

  /** What was stored for line i (whatever line comes there now). */
  stored(i: number): T | undefined {
    return this.entries[i]?.value;
  }

  /** lookup() without counting. */
  probe(i: number, d: Buffer, s: number, e: number): T | undefined {
    const en = this.entries[i];
    return en && this.matches(en, d, s, e) ? en.value : undefined;
  }

  /**
   * Compares without looking for the lastchg field by counting commas: if
   * the line starts with the remembered prefix (which ends with the comma
   * before lastchg), lastchg starts right after it.
   */
  private matches(en: Entry<T>, d: Buffer, s: number, e: number): boolean {
    const p = en.prefix;
    const plen = p.length;
    if (en.whole) return e - s === plen && (plen === 0 || d.compare(p, 0, plen, s, e) === 0);
    if (e - s < plen || (plen > 0 && d.compare(p, 0, plen, s, s + plen) !== 0)) return false;
    const from = s + plen;
    let end = from;
    while (end < e && d[end] !== COMMA) end++;
    const slen = en.suffix.length;
    if (e - end !== slen || (slen > 0 && d.compare(en.suffix, 0, slen, end, e) !== 0)) return false;
    this.setLine(d, s, e);
    this.start = from;
    this.end = end;
    this.hasField = true;
    return true;
  }

  /** Remembers line i (d[s, e)) and what was built from it. */
  store(i: number, d: Buffer, s: number, e: number, value: T): void {
    this.locate(d, s, e);
    const whole = !this.hasField;
    // Copies: a view would keep the whole answer alive.
    this.entries[i] = { prefix: Buffer.from(d.subarray(s, this.start)), suffix: Buffer.from(d.subarray(this.end, e)), whole, value };
  }

  /** Forgets line i (e.g. a line that is not compared raw). */
  forget(i: number): void {
    this.entries[i] = undefined;
  }

  /**
   * The lastchg value of line d[s, e) (0 when absent or not a plain
   * number), read without decoding or splitting the line.
   */
  lastchg(d: Buffer, s: number, e: number): number {
    this.locate(d, s, e);
    let n = 0;
    if (this.end <= this.start) return 0;
    for (let k = this.start; k < this.end; k++) {
      const c = d[k]! - 48;
      if (c < 0 || c > 9) {
        // Not plain digits: read it as the splitting path would.
        const v = Number(d.toString("utf8", this.start, this.end));
        return Number.isFinite(v) && v >= 0 ? v : 0;
      }
      n = n * 10 + c;
    }
    return n;
  }
}
