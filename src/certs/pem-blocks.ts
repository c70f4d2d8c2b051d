// PEM blocks of an upload, found by one pass over its lines. A regular
// expression that pairs "-----BEGIN X-----" with a later "-----END X-----"
// rescans the rest of the text for every opener that has no end: 1 MiB of
// BEGIN lines kept the event loop busy for 18 s. This scanner looks at each
// line once, so its time is linear in the size of the upload.
//
// As OpenSSL reads PEM: the BEGIN and END lines stand on lines of their own
// (surrounding blanks and a trailing \r are ignored); a BEGIN inside an open
// block starts the block again (the unterminated one is dropped); text
// outside blocks is ignored.

export interface PemBlock {
  /** "CERTIFICATE", "PRIVATE KEY", "X509 CRL", ... */
  type: string;
  /** The block from its BEGIN line to its END line, lines joined by "\n". */
  text: string;
  /** The lines between BEGIN and END, joined by "\n" (base64 and headers). */
  body: string;
}

const DASHES = "-----";

/** The type of a `-----BEGIN TYPE-----` / `-----END TYPE-----` line, or undefined. */
function marker(line: string, word: "BEGIN " | "END "): string | undefined {
  const head = DASHES + word;
  if (line.length <= head.length + DASHES.length || !line.startsWith(head) || !line.endsWith(DASHES)) return undefined;
  const type = line.slice(head.length, -DASHES.length);
  // Types are upper-case words ("RSA PRIVATE KEY"); anything else is no marker.
  for (let i = 0; i < type.length; i++) {
    const c = type.charCodeAt(i);
    const ok = (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 32;
    if (!ok) return undefined;
  }
  return type;
}

export function pemBlocks(text: string): PemBlock[] {
  const out: PemBlock[] = [];
  let open: { type: string; lines: string[] } | undefined;
  let start = 0;
  while (start <= text.length) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const line = text.slice(start, end).trim();
    start = end + 1;
    const begin = marker(line, "BEGIN ");
    if (begin !== undefined) {
      open = { type: begin, lines: [] };
      continue;
    }
    if (!open) continue;
    if (marker(line, "END ") === open.type) {
      const body = open.lines.join("\n");
      out.push({ type: open.type, body, text: `${DASHES}BEGIN ${open.type}${DASHES}\n${body}${body ? "\n" : ""}${DASHES}END ${open.type}${DASHES}` });
      open = undefined;
      continue;
    }
    open.lines.push(line);
  }
  return out;
}

/** Whether a block type is a private key of any kind ("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", ...). */
export function isPrivateKeyType(type: string): boolean {
  return type.endsWith("PRIVATE KEY");
}
