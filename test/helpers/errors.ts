// Assertions on the library's errors.

import assert from 'node:assert/strict';
import { PloopError, type PloopErrorCode } from '../../src/errors.ts';

function expectPloopError(caught: unknown, code: PloopErrorCode, patterns: RegExp[]): PloopError {
  assert.ok(caught !== null, `expected a PloopError ${code}, nothing was thrown`);
  assert.ok(caught instanceof PloopError, `expected a PloopError, got ${String(caught)}`);
  assert.equal(caught.code, code, `wrong code for: ${caught.message}`);
  for (const p of patterns) assert.match(caught.message, p);
  return caught;
}

/** Assert that `fn` throws a PloopError with this code and a message matching every regex. */
export function throwsWith(fn: () => unknown, code: PloopErrorCode, ...patterns: RegExp[]): PloopError {
  try {
    fn();
  } catch (e) {
    return expectPloopError(e, code, patterns);
  }
  return expectPloopError(null, code, patterns);
}

/** Assert that `fn` throws (or rejects with) a PloopError with this code and a message matching every regex. */
export async function rejectsWith(fn: () => unknown, code: PloopErrorCode, ...patterns: RegExp[]): Promise<PloopError> {
  try {
    await fn();
  } catch (e) {
    return expectPloopError(e, code, patterns);
  }
  return expectPloopError(null, code, patterns);
}
