// SPDX-License-Identifier: MIT
// One error class for the whole library. `code` says what kind of failure it is; the message
// names the operation, the field or argument, the value seen and what was expected.

export type PloopErrorCode =
  | 'EFORMAT'   // not a ploop image, or a header/BAT field is invalid
  | 'ECORRUPT'  // the image is a ploop image but its metadata is inconsistent
  | 'ERANGE'    // a request lies outside the virtual disk
  | 'EREADONLY' // a write to an image or store opened read-only
  | 'ENOSPC'    // no cluster can be allocated
  | 'EINVAL'    // a bad argument
  | 'ENOTSUP'   // the store or image cannot do this
  | 'EIO'       // the store failed
  | 'EBUSY'     // another writer has the image or disk folder open (it holds the lock)
  | 'ECLOSED'   // the image was closed
  | 'ENOENT'    // a path inside a filesystem names nothing
  | 'ENOTDIR'   // a path component inside a filesystem is not a directory
  | 'EISDIR'    // a file operation on a directory
  | 'ELOOP';    // too many symlinks in one path walk

export class PloopError extends Error {
  readonly code: PloopErrorCode;
  readonly data: Record<string, unknown>;

  constructor(code: PloopErrorCode, message: string, data: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'PloopError';
    this.code = code;
    this.data = data;
  }

  toJSON(): { name: string; code: PloopErrorCode; message: string; data: Record<string, unknown> } {
    return { name: this.name, code: this.code, message: this.message, data: this.data };
  }

  static fromJSON(json: { code: PloopErrorCode; message: string; data?: Record<string, unknown> }): PloopError {
    return new PloopError(json.code, json.message, json.data ?? {});
  }
}

/** Wrap a store failure so that the message names the operation; PloopErrors pass through. */
export function ioError(operation: string, cause: unknown): PloopError {
  if (cause instanceof PloopError) return cause;
  const why = cause instanceof Error ? cause.message : String(cause);
  return new PloopError('EIO', `${operation} failed: ${why}`, { operation }, { cause });
}
