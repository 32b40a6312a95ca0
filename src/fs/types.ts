// SPDX-License-Identifier: MIT
// The file browser's vocabulary: what a filesystem reader offers (Filesystem), and the small
// interface each on-disk format implements (FsDriver) so that path walking, symlinks, streaming
// and errors are written once (tree.ts), not once per format.

/** Filesystems whose files ploop-wasm can list and read. */
export type FsKind = 'ext2' | 'ext3' | 'ext4' | 'fat12' | 'fat16' | 'fat32' | 'iso9660';

/** The four kinds the CLI and JSON listings name; 'other' covers devices, FIFOs and sockets. */
export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

/** st_mode type bits (POSIX), used by every reader, FAT and ISO 9660 included. */
export const S_IFMT = 0o170000;
export const S_IFSOCK = 0o140000;
export const S_IFLNK = 0o120000;
export const S_IFREG = 0o100000;
export const S_IFBLK = 0o060000;
export const S_IFDIR = 0o040000;
export const S_IFCHR = 0o020000;
export const S_IFIFO = 0o010000;

/** The entry type of an st_mode. */
export function typeOfMode(mode: number): EntryType {
  switch (mode & S_IFMT) {
    case S_IFREG: return 'file';
    case S_IFDIR: return 'dir';
    case S_IFLNK: return 'symlink';
    default: return 'other';
  }
}

/** What stat says of one entry. Times are seconds since the epoch, with a fraction where the filesystem keeps one. */
export interface FsStat {
  type: EntryType;
  /** st_mode: type bits and permission bits (FAT and ISO 9660 without Rock Ridge get synthesized ones). */
  mode: number;
  /** Bytes: a file's length, a symlink's target length, a directory's on-disk size. */
  size: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Inode number (ext), or a number unique to the entry within the filesystem (FAT, ISO 9660). */
  inode: number;
  mtime: number;
  atime: number;
  ctime: number;
  /** Creation time where the filesystem keeps one, else null. */
  birthtime: number | null;
  /** Device number (major << 8 | minor, as Linux's old_encode_dev) of a block or character device, else 0. */
  rdev: number;
}

/** One directory entry as listed: its stat, its name and its absolute path from the filesystem's root. */
export interface FsEntry extends FsStat {
  name: string;
  /** Absolute from the filesystem's root, '/'-separated ('/' for the root itself). */
  path: string;
  /** A symlink's target (symlinks only). */
  target?: string;
  /**
   * Why this entry could not be read (its inode is corrupt, say): the directory still lists its
   * name, as `ls` does, with type 'other' and zeros for the rest.
   */
  error?: string;
}

/** The bytes of one volume (a partition, or the whole disk); offsets are relative to its start. */
export interface VolumeReader {
  readonly sizeBytes: number;
  /** Exactly `length` bytes at `offset`; a range past the volume's end is an ECORRUPT error naming `what`. */
  read(offset: number, length: number, what?: string): Promise<Uint8Array>;
}

/** A node of the tree as a driver knows it: its stat plus whatever the driver needs to reach its data. */
export interface FsNode {
  readonly stat: FsStat;
}

/** One entry of a directory listing: its node, or why it could not be read (and its inode number when known). */
export type ListedEntry<N> = { name: string; node: N } | { name: string; node: null; error: Error; inode: number };

/**
 * One on-disk format. Drivers validate what they read and throw PloopError('ECORRUPT', …) naming
 * the structure, the field, the value and what was expected; they bound every loop by what the
 * filesystem can hold, so a hostile image ends in an error, never a hang.
 */
export interface FsDriver<N extends FsNode = FsNode> {
  readonly kind: FsKind;
  readonly label: string | null;
  readonly uuid: string | null;
  /** Allocation unit in bytes (block or cluster). */
  readonly blockBytes: number;
  /** Things noticed that do not stop reading (a journal that needs replay, checksum mismatches). */
  readonly warnings: string[];
  root(): Promise<N>;
  /** The entry `name` of directory `dir`, or null when there is none. */
  lookup(dir: N, name: string): Promise<N | null>;
  /** Every entry of `dir` but `.` and `..`, in on-disk order; an entry that cannot be read has an error instead of a node. */
  list(dir: N): Promise<Array<ListedEntry<N>>>;
  /** A symlink's target. */
  readlink(node: N): Promise<string>;
  /** Bytes [offset, offset + length) of a regular file, clipped to its size (holes read as zeros). */
  read(node: N, offset: number, length: number): Promise<Uint8Array>;
}

/**
 * A filesystem opened for reading: paths are absolute from its root ('/etc/hostname'). Each
 * method also takes an entry it handed out (from readdir or stat), which skips the path walk.
 */
export interface Filesystem {
  readonly kind: FsKind;
  readonly label: string | null;
  readonly uuid: string | null;
  readonly blockBytes: number;
  readonly sizeBytes: number;
  /** Things noticed so far that do not stop reading; grows as more is read. */
  readonly warnings: readonly string[];
  /** The entry at `path` itself (a final symlink is not followed). */
  lstat(path: string | FsEntry): Promise<FsEntry>;
  /** The entry at `path`, following symlinks. */
  stat(path: string | FsEntry): Promise<FsEntry>;
  /** The entries of the directory at `path` (symlinks to directories are followed). */
  readdir(path: string | FsEntry): Promise<FsEntry[]>;
  readlink(path: string | FsEntry): Promise<string>;
  /** Up to `length` bytes at `offset` of the file at `path` (short at its end). */
  read(path: string | FsEntry, offset: number, length: number): Promise<Uint8Array>;
  /** The file's bytes in chunks of `chunkBytes` (default 1 MiB): one chunk in memory at a time. */
  stream(path: string | FsEntry, options?: StreamOptions): AsyncIterable<Uint8Array>;
}

export interface StreamOptions {
  chunkBytes?: number;
  /** First byte to read (default 0). */
  start?: number;
  /** Byte after the last to read (default: the file's size). */
  end?: number;
  signal?: AbortSignal;
}
