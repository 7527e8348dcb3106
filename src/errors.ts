/** Errors the use cases raise; the HTTP layer maps each to a problem+json status. */
export class AppError extends Error {
  override readonly name = 'AppError';
  constructor(
    readonly status: number,
    readonly title: string,
    message: string,
    /** RFC 6901 pointer into the request body, when a field is at fault. */
    readonly pointer?: string,
  ) {
    super(message);
  }
}

export const notFound = (what: string) => new AppError(404, 'Not Found', `${what} not found`);
export const conflict = (message: string) => new AppError(409, 'Conflict', message);
