// SPDX-License-Identifier: MIT
// The ext2/ext3/ext4 reader: an FsDriver over a volume, written from the on-disk format (the
// kernel's Documentation/filesystems/ext4/ and e2fsprogs' ext2_fs.h). Read-only; a journal that
// needs replay is read as the filesystem is and reported in `warnings`, as are checksum
// mismatches. Nodes carry their inode number in stat.inode, so a recursive walker can spot
// directory cycles and hard links.

import { PloopError } from '../../errors.js';
import { detectFilesystem } from '../../inspect/filesystems.js';
import { MAX_TARGET_BYTES } from '../tree.js';
import type { FsDriver, FsKind, FsNode, FsStat, ListedEntry, VolumeReader } from '../types.js';
import { ExtContext } from './context.js';
import { findEntry, readEntries, type RawEntry } from './dir.js';
import { readData } from './file.js';
import { checkSupported, INLINE_DATA_FL, I_BLOCK_BYTES, readInode, ROOT_INO, type Inode } from './inode.js';
import { corrupt, parseSuperblock, SUPERBLOCK_BYTES, SUPERBLOCK_OFFSET } from './superblock.js';

export interface ExtNode extends FsNode {
  readonly stat: FsStat;
  readonly inode: Inode;
}

/** Inodes loaded at once when a listing stats its entries (over HTTP each miss is a round trip). */
const PARALLEL_INODES = 32;

/** Open the ext2/3/4 filesystem on `volume`. */
export async function openExt(volume: VolumeReader): Promise<FsDriver<ExtNode>> {
  if (volume.sizeBytes < SUPERBLOCK_OFFSET + SUPERBLOCK_BYTES) {
    throw corrupt(`the volume holds ${volume.sizeBytes} bytes, too few for a superblock (${SUPERBLOCK_OFFSET + SUPERBLOCK_BYTES})`, { volumeBytes: volume.sizeBytes });
  }
  const head = await volume.read(0, SUPERBLOCK_OFFSET + SUPERBLOCK_BYTES, 'superblock');
  const sb = parseSuperblock(head.subarray(SUPERBLOCK_OFFSET), volume.sizeBytes);
  // Kind, label and UUID as the partition inspector names them.
  const info = await detectFilesystem(async (o, l) => {
    const out = new Uint8Array(l);
    if (o < head.length) out.set(head.subarray(o, Math.min(head.length, o + l)));
    return out;
  }, 0, 4096);
  const driver = new ExtDriver(new ExtContext(volume, sb), (info?.type ?? 'ext4') as FsKind, info?.label ?? null, info?.uuid ?? null);
  const root = await driver.root();
  if (root.stat.type !== 'dir') throw corrupt(`root inode ${ROOT_INO} is not a directory (i_mode 0o${root.stat.mode.toString(8)})`, { inode: ROOT_INO });
  return driver;
}

class ExtDriver implements FsDriver<ExtNode> {
  readonly #ctx: ExtContext;
  readonly kind: FsKind;
  readonly label: string | null;
  readonly uuid: string | null;
  readonly blockBytes: number;
  readonly #decoder = new TextDecoder('utf-8', { fatal: true });
  readonly #encoder = new TextEncoder();

  constructor(ctx: ExtContext, kind: FsKind, label: string | null, uuid: string | null) {
    this.#ctx = ctx;
    this.kind = kind;
    this.label = label;
    this.uuid = uuid;
    this.blockBytes = ctx.sb.blockBytes;
  }

  get warnings(): string[] {
    return this.#ctx.warnings;
  }

  async root(): Promise<ExtNode> {
    return this.#node(await readInode(this.#ctx, ROOT_INO, 'the superblock (root directory)'));
  }

  async lookup(dir: ExtNode, name: string): Promise<ExtNode | null> {
    this.#checkDir(dir, 'lookup');
        for (const bytes of this.#encodings(name)) {
      const ino = await findEntry(this.#ctx, dir.inode, bytes);
      if (ino !== null) return this.#node(await readInode(this.#ctx, ino, `entry "${name}" of directory inode ${dir.inode.ino}`));
    }
    return null;
  }

  async list(dir: ExtNode): Promise<Array<ListedEntry<ExtNode>>> {
    this.#checkDir(dir, 'list');
    const raw: RawEntry[] = [];
    await readEntries(this.#ctx, dir.inode, (e) => {
      if (!isDot(e.name)) raw.push({ name: e.name.slice(), ino: e.ino });
    });
    const out: Array<ListedEntry<ExtNode>> = new Array(raw.length);
    for (let i = 0; i < raw.length; i += PARALLEL_INODES) {
      await Promise.all(raw.slice(i, i + PARALLEL_INODES).map(async (e, j) => {
        const name = this.#decode(e.name);
        try {
          out[i + j] = { name, node: this.#node(await readInode(this.#ctx, e.ino, `entry "${name}" of directory inode ${dir.inode.ino}`)) };
        } catch (error) {
          // One bad inode leaves its name listed, with the reason, and the rest of the directory readable.
          if (!(error instanceof PloopError)) throw error;
          out[i + j] = { name, node: null, error, inode: e.ino };
        }
      }));
    }
    return out;
  }

  async readlink(node: ExtNode): Promise<string> {
    const { inode } = node;
    if (inode.stat.type !== 'symlink') throw new PloopError('EINVAL', `ext: readlink inode ${inode.ino}: not a symlink`, { inode: inode.ino });
    checkSupported(this.#ctx, inode, 'readlink');
    if (inode.size > MAX_TARGET_BYTES) {
      throw corrupt(`inode ${inode.ino}: symlink target of ${inode.size} bytes (expected at most ${MAX_TARGET_BYTES})`, { inode: inode.ino, field: 'i_size', value: inode.size });
    }
    // A fast symlink keeps its target in i_block and owns no block (but perhaps an xattr block), as the kernel tells them apart.
    const xattrBlocks = inode.fileAcl !== 0 ? this.#ctx.sb.blockBytes / 512 : 0;
    const fast = !(inode.flags & INLINE_DATA_FL) && inode.blocks - xattrBlocks === 0;
    let bytes: Uint8Array;
    if (fast) {
      if (inode.size >= I_BLOCK_BYTES) throw corrupt(`inode ${inode.ino}: fast symlink of ${inode.size} bytes (expected fewer than ${I_BLOCK_BYTES})`, { inode: inode.ino, field: 'i_size', value: inode.size });
      bytes = inode.iBlock.subarray(0, inode.size);
    } else {
      bytes = await readData(this.#ctx, inode, 0, inode.size);
    }
    return this.#decode(bytes);
  }

  async read(node: ExtNode, offset: number, length: number): Promise<Uint8Array> {
    checkSupported(this.#ctx, node.inode, 'read');
    return readData(this.#ctx, node.inode, offset, length);
  }

  #checkDir(dir: ExtNode, operation: string): void {
    if (dir.inode.stat.type !== 'dir') throw new PloopError('ENOTDIR', `ext: ${operation} inode ${dir.inode.ino}: not a directory`, { inode: dir.inode.ino });
    checkSupported(this.#ctx, dir.inode, operation);
  }

  #node(inode: Inode): ExtNode {
    return { stat: inode.stat, inode };
  }

  /** Names are bytes: UTF-8 where they are valid UTF-8, else one character per byte (Latin-1). */
  #decode(bytes: Uint8Array): string {
    try {
      return this.#decoder.decode(bytes);
    } catch {
      return String.fromCharCode(...bytes);
    }
  }

  /** The on-disk bytes a name may have: its UTF-8, and its Latin-1 bytes when #decode would have produced it from them. */
  #encodings(name: string): Uint8Array[] {
    const out = [this.#encoder.encode(name)];
    if (/^[\0-\xff]*$/.test(name) && /[\x80-\xff]/.test(name)) {
      const latin1 = Uint8Array.from(name, (c) => c.charCodeAt(0));
      try {
        this.#decoder.decode(latin1);
      } catch {
        out.push(latin1);
      }
    }
    return out;
  }
}

function isDot(name: Uint8Array): boolean {
  return name[0] === 0x2e && (name.length === 1 || (name.length === 2 && name[1] === 0x2e));
}
