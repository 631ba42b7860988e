/** Plain-text tables for the CLI (no colours, so output pipes cleanly). */
export function table(headers: string[], rows: Array<Array<string | number | undefined>>): string {
  const cells = rows.map((r) => r.map((c) => (c === undefined ? '' : String(c))));
  const widths = headers.map((h, i) => Math.max(h.length, ...cells.map((r) => r[i]?.length ?? 0)));
  const line = (r: string[]) =>
    r
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(headers), line(widths.map((w) => '-'.repeat(w))), ...cells.map(line)].join('\n');
}

export function isoSeconds(d: Date | undefined): string | undefined {
  return d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : undefined;
}

export function json(value: unknown): string {
  return JSON.stringify(value, null, 2);
}
