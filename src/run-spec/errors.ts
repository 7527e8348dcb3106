/** A spec that cannot be trained. `pointer` is an RFC 6901 JSON pointer into the request body. */
export class SpecError extends Error {
  override readonly name = 'SpecError';
  constructor(
    readonly pointer: string,
    message: string,
  ) {
    super(message);
  }
}
