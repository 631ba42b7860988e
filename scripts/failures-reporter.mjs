// A node:test reporter that writes one JSON line per failing test (file, line, name with its suites,
// first line of the error). scripts/run-tests.mjs runs it next to the console reporter, into a temporary
// file, and prints the list after node's closing summary.
// The line is where the error was thrown in the test file (its stack, source-mapped by tsx): node 20
// reports line 1 for every test of a file that tsx compiled.
// A suite that failed only because a test inside it failed ("subtestsFailed") is not listed: its test is.
export default async function* failuresReporter(source) {
  /** Per file, the names of the tests started at each nesting level: the suites around a failing test. */
  const open = new Map();
  for await (const event of source) {
    const data = event.data;
    if (event.type === 'test:start') {
      const names = open.get(data.file) ?? [];
      names.length = data.nesting;
      names.push(data.name);
      open.set(data.file, names);
    } else if (event.type === 'test:fail' && !data.todo && !data.skip) {
      const error = data.details?.error;
      if (error?.failureType === 'subtestsFailed') continue;
      const suites = (open.get(data.file) ?? []).slice(0, data.nesting);
      const cause = error?.cause ?? error;
      const message = String(cause?.message ?? cause ?? '')
        .replace(/\s+/g, ' ')
        .trim();
      yield `${JSON.stringify({
        file: data.file ?? null,
        line: lineInFile(cause?.stack, data.file) ?? (data.line > 1 ? data.line : null),
        name: [...suites, data.name].join(' > '),
        failureType: error?.failureType ?? null,
        message: message.length > 160 ? `${message.slice(0, 159)}…` : message,
      })}\n`;
    }
  }
}

function lineInFile(stack, file) {
  if (typeof stack !== 'string' || !file) return null;
  for (const frame of stack.split('\n')) {
    const at = frame.lastIndexOf(`${file}:`);
    if (at >= 0) return Number.parseInt(frame.slice(at + file.length + 1), 10) || null;
  }
  return null;
}
