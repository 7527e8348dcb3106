import { SpecError } from '../../src/run-spec/errors.js';

/** The SpecError `fn` throws; fails the test when it throws nothing or something else. */
export function specError(fn: () => unknown): SpecError {
  try {
    fn();
  } catch (err) {
    if (err instanceof SpecError) return err;
    throw err;
  }
  throw new Error('expected a SpecError');
}
