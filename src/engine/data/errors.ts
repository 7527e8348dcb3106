/** Typed errors of the dataset layer. Every message names the file (or spec field) at fault. */

export type DatasetErrorCode = 'DATASET_INVALID' | 'DATASET_PATH' | 'DATASET_FILE_MISSING' | 'DATASET_CHECKSUM' | 'IDX_FORMAT';

export class DatasetError extends Error {
  // Typed `string`, not the literal: the subclasses below set their own names.
  override readonly name: string = 'DatasetError';
  readonly code: DatasetErrorCode;
  constructor(message: string, code: DatasetErrorCode = 'DATASET_INVALID') {
    super(message);
    this.code = code;
  }
}

/** A spec value is invalid (limit, testFraction, numClasses, labels out of range, counts differ…). */
export class DatasetSpecError extends DatasetError {
  override readonly name = 'DatasetSpecError';
  /** The spec field at fault, e.g. 'limit' or 'train.labels', when there is one. */
  readonly field: string | null;
  constructor(message: string, field: string | null = null) {
    super(message, 'DATASET_INVALID');
    this.field = field;
  }
}

/** An IDX path escapes DATA_DIR (.., absolute path, symlink) or is otherwise unusable. */
export class DatasetPathError extends DatasetError {
  override readonly name = 'DatasetPathError';
  /** The spec field, e.g. 'train.images'. */
  readonly field: string;
  /** The path as given in the spec. */
  readonly path: string;
  constructor(field: string, path: string, reason: string) {
    super(`dataset.${field}: ${JSON.stringify(path)} ${reason}`, 'DATASET_PATH');
    this.field = field;
    this.path = path;
  }
}

export class DatasetFileMissingError extends DatasetError {
  override readonly name = 'DatasetFileMissingError';
  /** The spec field or file role, e.g. 'train.images'. */
  readonly field: string;
  /** The file name, e.g. 'emnist-balanced-train-images-idx3-ubyte.gz'. */
  readonly file: string;
  /** The absolute path that was looked at. */
  readonly path: string;
  /** Where to get the file (may be empty for user-supplied IDX files). */
  readonly hint: string;
  constructor(args: { field: string; file: string; path: string; hint: string; message: string }) {
    super(args.message, 'DATASET_FILE_MISSING');
    this.field = args.field;
    this.file = args.file;
    this.path = args.path;
    this.hint = args.hint;
  }
}

export class DatasetChecksumError extends DatasetError {
  override readonly name = 'DatasetChecksumError';
  readonly path: string;
  readonly expected: string;
  readonly actual: string;
  constructor(path: string, expected: string, actual: string) {
    super(
      `${path}: sha256 mismatch: expected ${expected} (official file), got ${actual}. ` +
        'The file is corrupt, truncated or not the official one; download it again.',
      'DATASET_CHECKSUM',
    );
    this.path = path;
    this.expected = expected;
    this.actual = actual;
  }
}

/** A file is not a valid IDX file of the expected kind. */
export class IdxFormatError extends DatasetError {
  override readonly name = 'IdxFormatError';
  readonly file: string;
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`, 'IDX_FORMAT');
    this.file = file;
  }
}
