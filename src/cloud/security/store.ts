import Database from 'better-sqlite3';

/**
 * SQLite persistence of the security registry (`<data-dir>/security.sqlite`): certificates, policies,
 * policy attachments, thing principals, role aliases, and the hashes of issued session tokens. The registry keeps everything in memory for the
 * broker's per-message decisions and writes through to this store, so a restart (even after kill -9)
 * finds every acknowledged change.
 */

export type CertificateStatus = 'ACTIVE' | 'INACTIVE' | 'REVOKED';
export type ThingPrincipalType = 'EXCLUSIVE_THING' | 'NON_EXCLUSIVE_THING';

export interface CertificateRow {
  certificateId: string;
  certificateArn: string;
  certificatePem: string;
  status: CertificateStatus;
  createdAt: number;
  lastModifiedAt: number;
}

export interface PolicyRow {
  policyName: string;
  policyArn: string;
  document: string;
  createdAt: number;
  lastModifiedAt: number;
}

export interface RoleAliasRow {
  roleAlias: string;
  roleAliasArn: string;
  roleArn: string;
  credentialDurationSeconds: number;
  createdAt: number;
  lastModifiedAt: number;
}

export interface AttachmentRow {
  policyName: string;
  target: string;
}

export interface ThingPrincipalRow {
  thingName: string;
  principal: string;
  type: ThingPrincipalType;
}

const SCHEMA_VERSION = 1;
const SCHEMA = `
CREATE TABLE IF NOT EXISTS certificates (
  certificate_id TEXT PRIMARY KEY, certificate_arn TEXT NOT NULL, certificate_pem TEXT NOT NULL,
  status TEXT NOT NULL, created_at INTEGER NOT NULL, last_modified_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS policies (
  policy_name TEXT PRIMARY KEY, policy_arn TEXT NOT NULL, document TEXT NOT NULL,
  created_at INTEGER NOT NULL, last_modified_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS policy_targets (
  policy_name TEXT NOT NULL REFERENCES policies(policy_name), target TEXT NOT NULL,
  PRIMARY KEY (policy_name, target));
CREATE TABLE IF NOT EXISTS thing_principals (
  thing_name TEXT NOT NULL, principal TEXT NOT NULL, type TEXT NOT NULL,
  PRIMARY KEY (thing_name, principal));
CREATE TABLE IF NOT EXISTS session_tokens (token_sha256 TEXT PRIMARY KEY, expires_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS role_aliases (
  role_alias TEXT PRIMARY KEY, role_alias_arn TEXT NOT NULL, role_arn TEXT NOT NULL,
  credential_duration_seconds INTEGER NOT NULL, created_at INTEGER NOT NULL, last_modified_at INTEGER NOT NULL);
`;

export interface SecurityStoreSnapshot {
  certificates: CertificateRow[];
  policies: PolicyRow[];
  attachments: AttachmentRow[];
  thingPrincipals: ThingPrincipalRow[];
  roleAliases: RoleAliasRow[];
}

export class SecurityStore {
  readonly #db: Database.Database;

  constructor(dbPath: string) {
    this.#db = new Database(dbPath);
    try {
      if (dbPath !== ':memory:') this.#db.pragma('journal_mode = WAL');
      this.#db.pragma('synchronous = FULL');
      this.#db.pragma('foreign_keys = ON');
      this.#db.pragma('busy_timeout = 5000');
      const version = this.#db.pragma('user_version', { simple: true }) as number;
      if (version > SCHEMA_VERSION) {
        throw new Error(
          `${dbPath}: schema version ${version} is newer than this program's (${SCHEMA_VERSION})`,
        );
      }
      this.#db.exec(SCHEMA);
      this.#db.pragma(`user_version = ${SCHEMA_VERSION}`);
    } catch (err) {
      this.#db.close();
      throw err;
    }
  }

  load(): SecurityStoreSnapshot {
    const db = this.#db;
    return {
      certificates: db
        .prepare(
          `SELECT certificate_id AS certificateId, certificate_arn AS certificateArn,
            certificate_pem AS certificatePem, status, created_at AS createdAt,
            last_modified_at AS lastModifiedAt FROM certificates`,
        )
        .all() as CertificateRow[],
      policies: db
        .prepare(
          `SELECT policy_name AS policyName, policy_arn AS policyArn, document, created_at AS createdAt,
            last_modified_at AS lastModifiedAt FROM policies`,
        )
        .all() as PolicyRow[],
      attachments: db
        .prepare('SELECT policy_name AS policyName, target FROM policy_targets')
        .all() as AttachmentRow[],
      thingPrincipals: db
        .prepare('SELECT thing_name AS thingName, principal, type FROM thing_principals')
        .all() as ThingPrincipalRow[],
      roleAliases: db
        .prepare(
          `SELECT role_alias AS roleAlias, role_alias_arn AS roleAliasArn, role_arn AS roleArn,
            credential_duration_seconds AS credentialDurationSeconds, created_at AS createdAt,
            last_modified_at AS lastModifiedAt FROM role_aliases`,
        )
        .all() as RoleAliasRow[],
    };
  }

  putCertificate(c: CertificateRow): void {
    this.#db
      .prepare(
        `INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(certificate_id) DO UPDATE SET
          status = excluded.status, last_modified_at = excluded.last_modified_at`,
      )
      .run(c.certificateId, c.certificateArn, c.certificatePem, c.status, c.createdAt, c.lastModifiedAt);
  }

  deleteCertificate(certificateId: string, certificateArn: string): void {
    this.#db.transaction(() => {
      this.#db.prepare('DELETE FROM policy_targets WHERE target = ?').run(certificateArn);
      this.#db.prepare('DELETE FROM certificates WHERE certificate_id = ?').run(certificateId);
    })();
  }

  putPolicy(p: PolicyRow): void {
    this.#db
      .prepare('INSERT INTO policies VALUES (?, ?, ?, ?, ?)')
      .run(p.policyName, p.policyArn, p.document, p.createdAt, p.lastModifiedAt);
  }

  deletePolicy(policyName: string): void {
    this.#db.prepare('DELETE FROM policies WHERE policy_name = ?').run(policyName);
  }

  attach(a: AttachmentRow): void {
    this.#db.prepare('INSERT OR IGNORE INTO policy_targets VALUES (?, ?)').run(a.policyName, a.target);
  }

  detach(a: AttachmentRow): void {
    this.#db
      .prepare('DELETE FROM policy_targets WHERE policy_name = ? AND target = ?')
      .run(a.policyName, a.target);
  }

  putThingPrincipal(t: ThingPrincipalRow): void {
    this.#db
      .prepare(
        `INSERT INTO thing_principals VALUES (?, ?, ?)
          ON CONFLICT(thing_name, principal) DO UPDATE SET type = excluded.type`,
      )
      .run(t.thingName, t.principal, t.type);
  }

  deleteThingPrincipal(thingName: string, principal: string): void {
    this.#db
      .prepare('DELETE FROM thing_principals WHERE thing_name = ? AND principal = ?')
      .run(thingName, principal);
  }

  deleteThingPrincipals(thingName: string): void {
    this.#db.prepare('DELETE FROM thing_principals WHERE thing_name = ?').run(thingName);
  }

  putRoleAlias(r: RoleAliasRow): void {
    this.#db
      .prepare('INSERT INTO role_aliases VALUES (?, ?, ?, ?, ?, ?)')
      .run(
        r.roleAlias,
        r.roleAliasArn,
        r.roleArn,
        r.credentialDurationSeconds,
        r.createdAt,
        r.lastModifiedAt,
      );
  }

  deleteRoleAlias(roleAlias: string): void {
    this.#db.prepare('DELETE FROM role_aliases WHERE role_alias = ?').run(roleAlias);
  }

  /** Session tokens (credentials/session-tokens.ts), by hash. */
  readonly sessionTokens = {
    put: (tokenHash: string, expiresAt: number): void => {
      this.#db.prepare('INSERT OR REPLACE INTO session_tokens VALUES (?, ?)').run(tokenHash, expiresAt);
    },
    get: (tokenHash: string): number | undefined => {
      const row = this.#db
        .prepare('SELECT expires_at AS e FROM session_tokens WHERE token_sha256 = ?')
        .get(tokenHash) as { e: number } | undefined;
      return row?.e;
    },
    purge: (now: number): void => {
      this.#db.prepare('DELETE FROM session_tokens WHERE expires_at < ?').run(now);
    },
  };

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}
