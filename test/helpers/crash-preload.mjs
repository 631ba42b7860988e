// Loaded into an agent process with `node --import` (NODE_OPTIONS): SIGKILLs the process right before or
// right after its N-th durable file-system step under OTA_CRASH_ROOT, the way a power cut would stop it.
// Durable steps: rename, symlink, unlink/rm, copyFile, writeFile, mkdir, FileHandle sync/datasync, and a
// hook command's start and end (a spawn whose command line names a path under the root; "after" its end
// is before the agent has seen the exit). Plain writes of image bytes are not steps: a cut inside them is
// a cut before the next sync.
//
//   OTA_CRASH_ROOT=/dir      only paths below it count
//   OTA_CRASH_AT=7:before    kill before the 7th step (or 7:after)
//   OTA_CRASH_LOG=/file      append "<n> <op> <path>" for each step (to enumerate the points)

import childProcess from 'node:child_process';
import fs, { appendFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const root = process.env.OTA_CRASH_ROOT;
const [atText, when] = (process.env.OTA_CRASH_AT ?? '').split(':');
const at = Number(atText);
const log = process.env.OTA_CRASH_LOG;
let n = 0;

const under = (p) => root !== undefined && typeof p === 'string' && p.includes(root);
const die = () => process.kill(process.pid, 'SIGKILL');

/** Counts one step; kills before it when asked. Returns whether to kill after it. */
function step(op, path) {
  if (!under(path)) return false;
  n++;
  if (log) appendFileSync(log, `${n} ${op} ${path}\n`);
  if (n !== at) return false;
  if (when === 'before') die();
  return when === 'after';
}

function wrap(obj, name, pathOf = (args) => args[0]) {
  const orig = obj[name];
  if (typeof orig !== 'function') return;
  obj[name] = async function (...args) {
    const killAfter = step(name, String(pathOf(args)));
    const r = await orig.apply(this, args);
    if (killAfter) die();
    return r;
  };
}

if (root) {
  const p = fs.promises;
  for (const name of ['rename', 'symlink', 'unlink', 'rm', 'copyFile', 'writeFile', 'mkdir']) {
    wrap(p, name, name === 'rename' || name === 'symlink' || name === 'copyFile' ? (a) => a[1] : (a) => a[0]);
  }
  // FileHandle: sync and datasync are the durable points of a file being written.
  const fh = await p.open(process.execPath, 'r');
  const proto = Object.getPrototypeOf(fh);
  await fh.close();
  const paths = new WeakMap();
  const open = p.open;
  p.open = async function (path, ...rest) {
    const h = await open.call(this, path, ...rest);
    paths.set(h, String(path));
    return h;
  };
  for (const name of ['sync', 'datasync']) {
    const orig = proto[name];
    proto[name] = async function (...args) {
      const killAfter = step(name, paths.get(this));
      const r = await orig.apply(this, args);
      if (killAfter) die();
      return r;
    };
  }
  const spawn = childProcess.spawn;
  childProcess.spawn = function (file, args, ...rest) {
    const line = [file, ...(Array.isArray(args) ? args : [])].join(' ');
    const hook = root !== undefined && line.includes(root);
    const killAfterStart = hook && step('spawn', line);
    const child = spawn.call(this, file, args, ...rest);
    if (killAfterStart) die();
    // Registered before the caller's listeners: a kill here comes before the agent learns the outcome.
    if (hook) child.once('exit', () => step('exit', line) && die());
    return child;
  };
  syncBuiltinESMExports();
}
