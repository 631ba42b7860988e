import { sep } from 'node:path';
import type { FirmwareDocument, ResolvedSource } from '../document/job-document.ts';

/**
 * The console sections of the original JobProgress.py (docs/original.md), written to an injected writer so an
 * embedded agent never prints on its own.
 */

/** Python's repr() of a JSON value: the original printed the document as a dict (`{'firmware': {...}}`). */
export function pythonRepr(v: unknown, depth = 0): string {
  // Bounded, as Python's reprlib is: a hostile document must not overflow the stack here.
  if (depth > MAX_REPR_DEPTH) return '...';
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') return Number.isInteger(v) ? String(v) : String(v);
  if (typeof v === 'string') return pyStr(v);
  if (Array.isArray(v)) return `[${v.map((x) => pythonRepr(x, depth + 1)).join(', ')}]`;
  if (typeof v === 'object') {
    return `{${Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${pyStr(k)}: ${pythonRepr(x, depth + 1)}`)
      .join(', ')}}`;
  }
  return String(v);
}

const MAX_REPR_DEPTH = 64;

function pyStr(s: string): string {
  const q = s.includes("'") && !s.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of s) {
    const c = ch.codePointAt(0) ?? 0;
    if (ch === '\\') out += '\\\\';
    else if (ch === q) out += `\\${q}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (c < 0x20 || c === 0x7f) out += `\\x${c.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return q + out + q;
}

/** Python's repr() of bytes: the original printed `message.payload` as `b'...'`. */
export function pythonBytesRepr(buf: Buffer): string {
  const hasSingle = buf.includes(0x27);
  const hasDouble = buf.includes(0x22);
  const q = hasSingle && !hasDouble ? 0x22 : 0x27;
  let out = '';
  for (const b of buf) {
    if (b === 0x5c) out += '\\\\';
    else if (b === q) out += `\\${String.fromCharCode(q)}`;
    else if (b === 0x0a) out += '\\n';
    else if (b === 0x0d) out += '\\r';
    else if (b === 0x09) out += '\\t';
    else if (b < 0x20 || b >= 0x7f) out += `\\x${b.toString(16).padStart(2, '0')}`;
    else out += String.fromCharCode(b);
  }
  return `b${String.fromCharCode(q)}${out}${String.fromCharCode(q)}`;
}

/** The document as printed: presigned URLs lose their query (a bearer credential until it expires). */
export function redactDocument(v: unknown, depth = 0): unknown {
  if (depth > MAX_REPR_DEPTH) return '...';
  if (typeof v === 'string') {
    if (!/[?&]X-Amz-Signature=/i.test(v)) return v;
    const q = v.indexOf('?');
    return `${v.slice(0, q)}?<presigned>`;
  }
  if (Array.isArray(v)) return v.map((x) => redactDocument(x, depth + 1));
  if (v !== null && typeof v === 'object') {
    return Object.fromEntries(
      Object.entries(v as Record<string, unknown>).map(([k, x]) => [k, redactDocument(x, depth + 1)]),
    );
  }
  return v;
}

export function jobInfoSection(info: {
  jobId: string;
  status: string;
  size?: number;
  documentSource?: string;
  document: unknown;
}): string {
  const lines = ['===== [Job Info] =====', `Job name: ${info.jobId}`, `Status: ${info.status}`];
  if (info.size !== undefined) lines.push(`Size: ${info.size}`);
  if (info.documentSource) lines.push('Document Source:', info.documentSource);
  lines.push('Document:', pythonRepr(redactDocument(info.document)));
  return `${lines.join('\n')}\n\n`;
}

/** Strips a presigned URL's query string: signatures never go to logs or consoles. */
export function displayUrl(url: URL | string): string {
  if (!URL.canParse(String(url))) {
    // Not a URL (validation refuses the job anyway): show it without a possible query, never throw.
    return JSON.stringify(String(url).split('?')[0]?.slice(0, 200));
  }
  const u = new URL(String(url));
  return `${u.origin}${u.pathname}`;
}

export function requiredInfoSection(
  src: ResolvedSource | { url: string; fileName?: string },
  downloadDir: string,
): string {
  const lines = ['===== [Required Info for OTA] =====', 'FROM----->>'];
  const s = src as Partial<ResolvedSource> & { url: URL | string };
  if (s.bucket !== undefined && s.key !== undefined) {
    lines.push(`Bucket: ${s.bucket}`, `Key: ${s.key}`);
  } else {
    lines.push(`URL: ${displayUrl(s.url)}`);
  }
  if (s.fileName) lines.push(`File: ${s.fileName}`);
  lines.push(
    '',
    'TO----->>',
    `Local Directory: ${downloadDir.endsWith(sep) ? downloadDir : downloadDir + sep}`,
    '=====',
  );
  return `${lines.join('\n')}\n\n`;
}

export function versionSection(newVersion: string, currentVersion: string): string {
  return `===== [Version Information] =====\nNew Version: ${newVersion}\nCurrent Version: ${currentVersion}\n=====\n\n`;
}

/** The subscriber output of the original: payload as Python bytes, then the topic. */
export function receivedSection(topic: string, payload: Buffer): string {
  return `Received a new message:\n${pythonBytesRepr(payload)}\nfrom topic:\n${topic}\n=====\n`;
}

export function publishedLine(topic: string, json: string): string {
  return `Published topic ${topic}: ${json}\n\n`;
}

export type { FirmwareDocument };
