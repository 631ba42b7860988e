import assert from 'node:assert/strict';
import { ValidationError } from '../../../../src/shared/errors.ts';

/** The flags every agent config needs (an AWS endpoint, a certificate pair, a thing). */
export const base = {
  endpoint: 'abc-ats.iot.us-west-2.amazonaws.com',
  cert: '/c.pem',
  key: '/k.pem',
  thingName: 'RaspberryPi_2',
};

/** `fn` throws a ValidationError naming `field`, its message matching `re`. */
export const fails = (fn: () => unknown, field: string, re: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof ValidationError && e.field === field && re.test(e.message));
