import { createHash, randomBytes } from 'node:crypto';
import { type Clock, systemClock } from '../../shared/clock.ts';

/**
 * Session tokens of the local stack's temporary credentials.
 *
 * On AWS, the credentials provider hands a device STS temporary credentials: an `ASIA…` key, its secret
 * and a session token, all three required on every request until they expire. The local stack has one
 * key pair (endpoints.json), so its temporary credentials are that pair plus a session token the stack
 * issued, with an expiry. Where the stack verifies SigV4 (the IoT control plane, the WebSocket presign),
 * a request signed with the stack's key either carries no token (the long-term credential) or a token
 * from here that has not expired; any other token (one from AWS STS, say) is refused, as AWS refuses a
 * token it did not issue. Only a hash of each token is kept.
 */

export type SessionTokenCheck = 'valid' | 'expired' | 'invalid';

export interface SessionTokenStore {
  put(tokenHash: string, expiresAt: number): void;
  get(tokenHash: string): number | undefined;
  /** Forgets tokens that expired before `now`. */
  purge(now: number): void;
}

export interface SessionTokens {
  issue(durationSeconds: number): { sessionToken: string; expiration: Date };
  check(sessionToken: string): SessionTokenCheck;
}

/** Tokens are forgotten this long after they expire, so a late request still hears "expired". */
const GRACE_MS = 24 * 3600_000;

export function memorySessionTokenStore(): SessionTokenStore {
  const tokens = new Map<string, number>();
  return {
    put: (h, exp) => void tokens.set(h, exp),
    get: (h) => tokens.get(h),
    purge(now) {
      for (const [h, exp] of tokens) if (exp < now) tokens.delete(h);
    },
  };
}

export function createSessionTokens(
  store: SessionTokenStore = memorySessionTokenStore(),
  clock: Pick<Clock, 'now'> = systemClock,
): SessionTokens {
  const hash = (token: string) => createHash('sha256').update(token, 'utf8').digest('hex');
  return {
    issue(durationSeconds) {
      const t = clock.now();
      store.purge(t - GRACE_MS);
      const sessionToken = randomBytes(48).toString('base64');
      const expiresAt = t + durationSeconds * 1000;
      store.put(hash(sessionToken), expiresAt);
      return { sessionToken, expiration: new Date(expiresAt) };
    },
    check(sessionToken) {
      const expiresAt = store.get(hash(sessionToken));
      if (expiresAt === undefined) return 'invalid';
      return clock.now() < expiresAt ? 'valid' : 'expired';
    },
  };
}
