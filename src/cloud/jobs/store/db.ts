/**
 * SQLite persistence of the local Jobs service (better-sqlite3, synchronous).
 *
 * Durability: WAL journal. In WAL mode synchronous=NORMAL already survives a process crash (kill -9), but
 * a power loss or OS crash can roll back the last commits — and a device may already have been told the
 * versionNumber of such a commit, so after restart it would see the number move backwards. So no message
 * or reply leaves for a state that is not on disk: commits run with NORMAL and `syncWal` makes them
 * durable with one fdatasync of the WAL for every commit so far (a group commit, group-commit.ts). With
 * synchronous=FULL each commit fsynced on its own, blocking the event loop ≈ 1–4 ms on this machine's
 * disk: at 10,000 devices (≈ 4 commits each) that alone was minutes (docs/benchmarks.md, fleet).
 *
 * Every state change is one `transaction()`; callers compose several writes inside it.
 */
import { closeSync, existsSync, fdatasync, fdatasyncSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import { OtaError } from '../../../shared/errors.ts';
import { SCHEMA_V1, SCHEMA_V2, SCHEMA_V3, SCHEMA_VERSION } from './schema.ts';

export class StoreError extends OtaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTA_JOBS_STORE', message, options);
  }
}

/**
 * The database under the Jobs store: opening it (pragmas, migrations to SCHEMA_VERSION), transactions,
 * and the group commit's WAL sync. The queries are JobsStore's (store.ts).
 */
export class JobsDatabase {
  readonly db: Database.Database;
  /** The WAL file (undefined in memory); `unsynced`: a commit since the last syncWal started. */
  private readonly walPath: string | undefined;
  private walFd: number | undefined;
  private unsynced = false;

  constructor(dbPath: string) {
    this.db = cachePrepared(new Database(dbPath));
    this.walPath = dbPath === ':memory:' ? undefined : `${dbPath}-wal`;
    try {
      if (dbPath !== ':memory:') this.db.pragma('journal_mode = WAL');
      // NORMAL + syncWal before anything is sent (see the top of this file).
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      this.db.pragma('busy_timeout = 5000');
      this.migrate();
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  private migrate(): void {
    const version = this.db.pragma('user_version', { simple: true }) as number;
    if (version > SCHEMA_VERSION) {
      throw new StoreError(
        `jobs database schema version ${version} is newer than this program understands (${SCHEMA_VERSION})`,
      );
    }
    const steps = [SCHEMA_V1, SCHEMA_V2, SCHEMA_V3];
    if (version < steps.length) {
      this.db.transaction(() => {
        for (const sql of steps.slice(version)) this.db.exec(sql);
        this.db.pragma(`user_version = ${SCHEMA_VERSION}`);
      })();
    }
  }

  /** Runs `fn` in one IMMEDIATE transaction (nested calls join the outer one). */
  transaction<T>(fn: () => T): T {
    const outer = !this.db.inTransaction;
    const result = this.db.transaction(fn).immediate();
    if (outer) this.unsynced = true;
    return result;
  }

  /**
   * Makes every commit so far durable: one fdatasync of the WAL on the thread pool, then `done` (at once
   * when nothing was committed since the last call). Checkpoints sync on their own (synchronous=NORMAL:
   * the WAL before, the database after), so what left the WAL is on disk too.
   */
  syncWal(done: (err?: Error) => void): void {
    const fd = this.walForSync();
    if (fd === undefined) {
      done();
      return;
    }
    fdatasync(fd, (err) => done(err ?? undefined));
  }

  /** syncWal, blocking: for replies sent straight after a change (the control plane's HTTP answers). */
  syncWalNow(): void {
    const fd = this.walForSync();
    if (fd !== undefined) fdatasyncSync(fd);
  }

  private walForSync(): number | undefined {
    if (!this.unsynced || this.walPath === undefined || !this.db.open) return undefined;
    this.unsynced = false;
    // SQLite keeps the -wal file (same inode: a checkpoint rewinds it, never unlinks it) while the
    // database is open; it is created by the first write, hence opened here on first use.
    if (this.walFd === undefined && existsSync(this.walPath)) this.walFd = openSync(this.walPath, 'r');
    return this.walFd;
  }

  close(): void {
    if (this.db.open) this.db.close();
    if (this.walFd !== undefined) closeSync(this.walFd);
    this.walFd = undefined;
  }
}

/**
 * better-sqlite3 compiles a statement on every `prepare` (6–40 µs, and the planner's work for the bigger
 * queries); the store's SQL is a fixed set of strings, so each is compiled once and reused. No statement
 * is iterated (`iterate()` would make a shared statement busy), so sharing is safe.
 */
function cachePrepared(db: Database.Database): Database.Database {
  const cache = new Map<string, Database.Statement>();
  const prepare = db.prepare.bind(db);
  db.prepare = ((sql: string) => {
    let statement = cache.get(sql);
    if (statement === undefined) {
      statement = prepare(sql);
      cache.set(sql, statement);
    }
    return statement;
  }) as typeof db.prepare;
  return db;
}
