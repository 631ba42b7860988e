/**
 * One error hierarchy for the whole project, in the style of undici: every error has a stable `code`
 * that callers and tests match on, never the message text.
 */
export class OtaError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/** Input (a flag, a config file, a job document, a request) failed validation. `field` names the culprit. */
export class ValidationError extends OtaError {
  readonly field: string;
  constructor(field: string, problem: string, options?: { cause?: unknown }) {
    super('OTA_VALIDATION', `${field}: ${problem}`, options);
    this.field = field;
  }
}

/** A configuration file or endpoints.json could not be read or is invalid. */
export class ConfigError extends OtaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTA_CONFIG', message, options);
  }
}

/** Something expected was not found (a thing, a job, a data dir). */
export class NotFoundError extends OtaError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('OTA_NOT_FOUND', message, options);
  }
}

/** An operation was cancelled or the component was closed while it ran. */
export class AbortedError extends OtaError {
  constructor(message = 'aborted', options?: { cause?: unknown }) {
    super('OTA_ABORTED', message, options);
  }
}

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
