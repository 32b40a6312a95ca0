// SPDX-License-Identifier: MIT
// convert's raw input: pieces read on this thread, and told apart when they are all zeros.
//
// A sparse raw file (10 GiB with 1 MiB of data) is mostly holes. qemu-img asks the filesystem
// where the data is (lseek SEEK_DATA); Node has no lseek. Reading the holes through the page
// cache costs a page-cache page per 4 KiB of hole, allocated, zeroed and copied: 10 GiB of holes
// took 18.6 s of system time on a cold file (0.5 s once cached). Read with O_DIRECT, a hole is
// zeroed straight into the caller's buffer, with no page cache at all: 0.16 s for the same
// 10 GiB. So a file that the filesystem says is mostly holes (fstat's blocks) is read with
// O_DIRECT; the others (and any filesystem that refuses O_DIRECT) through the page cache, which
// is faster for data that is cached already. The blocks are only a hint for that choice: every
// byte is still read, so a filesystem that under-counts (compression) loses nothing.

import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { ioError } from '../errors.js';

/** O_DIRECT wants the buffer, the file offset and the length aligned to the logical block. */
const DIRECT_ALIGN = 4096;
/** Files below this size are read through the page cache whatever they hold. */
const DIRECT_MIN_BYTES = 64 << 20;
const WASM_PAGE_BYTES = 65536;

const ZEROS = Buffer.alloc(1 << 20);

/** True when every byte is 0: memcmp against a zero buffer (5× the speed of a JS word loop). */
export function isZeroFast(bytes: Uint8Array): boolean {
  for (let at = 0; at < bytes.length; at += ZEROS.length) {
    const n = Math.min(ZEROS.length, bytes.length - at);
    if (Buffer.compare(Buffer.from(bytes.buffer, bytes.byteOffset + at, n), n === ZEROS.length ? ZEROS : ZEROS.subarray(0, n)) !== 0) return false;
  }
  return true;
}

export class RawInput {
  readonly path: string;
  readonly size: number;
  /** How the pieces are read: 'direct' (O_DIRECT) or 'cached' (through the page cache). */
  mode: 'direct' | 'cached';
  readonly #fd: number;
  #directFd: number;
  /** The O_DIRECT reads land here: WebAssembly memory starts on a page boundary (an mmap). */
  #aligned: Uint8Array | null = null;

  private constructor(path: string, fd: number, size: number, directFd: number) {
    this.path = path;
    this.#fd = fd;
    this.size = size;
    this.#directFd = directFd;
    this.mode = directFd >= 0 ? 'direct' : 'cached';
  }

  /** Open `path`; `pieceBytes` is the largest read that will be asked for. */
  static open(path: string, pieceBytes: number): RawInput {
    let fd;
    try {
      fd = openSync(path, 'r');
    } catch (e) {
      throw ioError(`open ${path}`, e);
    }
    let directFd = -1;
    try {
      const s = fstatSync(fd);
      if (s.size >= DIRECT_MIN_BYTES && s.blocks * 512 < s.size / 2 && constants.O_DIRECT) {
        try {
          directFd = openSync(path, constants.O_RDONLY | constants.O_DIRECT);
        } catch {
          // tmpfs and some others refuse O_DIRECT: the page cache it is
        }
      }
      const input = new RawInput(path, fd, s.size, directFd);
      if (directFd >= 0) {
        const bytes = Math.ceil(pieceBytes / DIRECT_ALIGN) * DIRECT_ALIGN;
        input.#aligned = new Uint8Array(new WebAssembly.Memory({ initial: Math.ceil(bytes / WASM_PAGE_BYTES) }).buffer, 0, bytes);
      }
      return input;
    } catch (e) {
      closeSync(fd);
      if (directFd >= 0) closeSync(directFd);
      throw ioError(`stat ${path}`, e);
    }
  }

  /**
   * Fill `into` with the bytes at `offset` (zeros past the end of the file) and say whether any
   * of them is not zero. When none is, `into` may be left as it was: the caller skips the piece.
   */
  readUnlessZero(offset: number, into: Uint8Array): boolean {
    if (this.#directFd >= 0 && offset % DIRECT_ALIGN === 0 && into.length <= this.#aligned!.length) {
      const length = Math.ceil(into.length / DIRECT_ALIGN) * DIRECT_ALIGN;
      const buffer = this.#aligned!.subarray(0, length);
      let n;
      try {
        n = this.#fill(this.#directFd, offset, buffer);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EINVAL') throw ioError(`read ${this.path} at ${offset}`, e);
        // The filesystem wants another alignment: read the rest through the page cache.
        this.#stopDirect();
        return this.readUnlessZero(offset, into);
      }
      const piece = buffer.subarray(0, Math.min(n, into.length));
      if (isZeroFast(piece)) return false;
      into.set(piece);
      into.fill(0, piece.length);
      return true;
    }
    let n;
    try {
      n = this.#fill(this.#fd, offset, into);
    } catch (e) {
      throw ioError(`read ${this.path} at ${offset}`, e);
    }
    into.fill(0, n);
    return !isZeroFast(into.subarray(0, n));
  }

  /** Read until `into` is full or the file ends; returns the bytes read (at most to the end). */
  #fill(fd: number, offset: number, into: Uint8Array): number {
    const want = Math.max(0, Math.min(into.length, this.size - offset));
    let done = 0;
    while (done < want) {
      const n = readSync(fd, into, done, into.length - done, offset + done);
      if (n === 0) break;
      done += n;
    }
    return Math.min(done, want);
  }

  #stopDirect(): void {
    closeSync(this.#directFd);
    this.#directFd = -1;
    this.#aligned = null;
    this.mode = 'cached';
  }

  close(): void {
    closeSync(this.#fd);
    if (this.#directFd >= 0) closeSync(this.#directFd);
  }
}
