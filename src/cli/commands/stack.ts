// SPDX-License-Identifier: MIT
// Commands on ploop disk folders (DiskDescriptor.xml + deltas): init, snapshot, merge, resize.
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { NodeDirectory } from '../../stores/node-dir.js';
import { NodeFileStore } from '../../stores/node-fs.js';
import { MIN_BLOCKSIZE_SECTORS, MAX_BLOCKSIZE_SECTORS } from '../../format/descriptor.js';
import { newHeader } from '../../format/header.js';
import { PloopError } from '../../errors.js';
import { initStack, snapshotStack, mergeStack, mergeAll, resizeStack, deleteSnapshotStack } from '../../engine/stack.js';
import { resizeImage } from '../../engine/resize.js';
import { stackDirOf } from '../open.js';
import { parse, parseSize, parseCount, required, UsageError, formatSize, plural } from '../args.js';
import type { Command } from '../command.js';

export const init: Command = {
  name: 'init',
  summary: 'create a disk folder: DiskDescriptor.xml and an empty root.hds',
  usage: `ploop-wasm init DIR --size SIZE [--cluster-size SIZE] [--format v1|v2] [--force]

  Lays the disk out as the ploop tools do: DIR/DiskDescriptor.xml naming DIR/root.hds. DIR is
  made if it does not exist; one that holds files is refused unless --force (a disk folder,
  one with DiskDescriptor.xml, is refused even then).
  --cluster-size defaults to 1M; a power of two from 32K to 64M (the ploop tools' range).`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      size: { type: 'string' }, 'cluster-size': { type: 'string' }, format: { type: 'string' }, force: { type: 'boolean' },
    }, { min: 1, max: 1, names: 'DIR' });
    if (values.help) return -1;
    const path = positionals[0];
    const sizeText = required(values, 'size');
    const size = parseSize(sizeText, '--size');
    if (size === 0) throw new UsageError(`--size: "${sizeText}" is 0 bytes, expected at least 1 (a disk folder's size is rounded up to whole clusters)`);
    const clusterSize = values['cluster-size'] ? parseSize(values['cluster-size'] as string, '--cluster-size') : undefined;
    const format = (values.format as string | undefined) ?? 'v2';
    if (format !== 'v1' && format !== 'v2') throw new UsageError(`--format: "${format}" is not v1 or v2`);
    // Everything is checked before anything is made: a failed init leaves no folder behind.
    newHeader({ size, clusterBytes: clusterSize, format });
    if (clusterSize !== undefined) checkBlocksize(values['cluster-size'] as string, clusterSize);
    const made = await prepareFolder(path, !!values.force);
    try {
      const d = await initStack(new NodeDirectory(path), { size, clusterSize, format });
      process.stdout.write(`created ${path}/DiskDescriptor.xml and root.hds: ${formatSize(d.diskSizeSectors * 512)}, ${formatSize(d.blocksizeSectors * 512)} clusters\n`);
    } catch (e) {
      // Remove what this init made: the folders it created, or else the files it added.
      if (made.createdFolder) await rm(made.createdFolder, { recursive: true, force: true });
      else for (const file of ['root.hds', 'DiskDescriptor.xml']) if (!made.entries.includes(file)) await rm(join(path, file), { force: true });
      throw e;
    }
    return 0;
  },
};

/** A disk folder's cluster size is its descriptor's Blocksize, which the ploop tools limit. */
function checkBlocksize(text: string, clusterSize: number): void {
  const sectors = clusterSize / 512;
  if (!Number.isInteger(sectors) || sectors < MIN_BLOCKSIZE_SECTORS || sectors > MAX_BLOCKSIZE_SECTORS || (sectors & (sectors - 1)) !== 0) {
    throw new UsageError(`--cluster-size: "${text}" is ${clusterSize} bytes; a disk folder needs a power of two from ${formatSize(MIN_BLOCKSIZE_SECTORS * 512)} to ${formatSize(MAX_BLOCKSIZE_SECTORS * 512)}`);
  }
}

/**
 * The folder init writes into: made when missing (returns the first folder it made, to remove
 * on failure), refused when it holds a disk, or holds anything without `force`.
 */
async function prepareFolder(path: string, force: boolean): Promise<{ createdFolder: string | null; entries: string[] }> {
  let s;
  try {
    s = await stat(path);
  } catch {
    const createdFolder = (await mkdir(path, { recursive: true })) ?? null;
    return { createdFolder, entries: [] };
  }
  if (!s.isDirectory()) throw new PloopError('EINVAL', `${path} is a file, expected a folder for the disk (create makes an image file)`, { path });
  // The ploop tools' lock file stays after a disk is gone (it is never removed): no content.
  const entries = (await readdir(path)).filter((e) => e !== 'DiskDescriptor.xml.lck');
  if (entries.includes('DiskDescriptor.xml')) {
    throw new PloopError('EINVAL', `${path}: DiskDescriptor.xml already exists, the folder holds a disk; remove it first (--force does not replace a disk)`, { path });
  }
  if (entries.length > 0 && !force) {
    const shown = entries.slice(0, 3).join(', ') + (entries.length > 3 ? `, … ${entries.length} entries` : '');
    throw new PloopError('EINVAL', `${path} is not empty (${shown}); --force uses it anyway`, { path });
  }
  return { createdFolder: null, entries };
}

async function needDir(path: string): Promise<NodeDirectory> {
  const dir = await stackDirOf(path);
  if (!dir) throw new UsageError(`${path} is not a disk folder (a folder with DiskDescriptor.xml)`);
  return dir;
}

export const snapshot: Command = {
  name: 'snapshot',
  summary: 'freeze the top delta and add a new empty top delta',
  usage: `ploop-wasm snapshot DIR

  The current top delta becomes a read-only snapshot (it keeps its file and gets a new GUID);
  a new empty delta file DIR/<base>.{uuid} becomes the top. Prints the snapshot's GUID.`,
  async run(argv) {
    const { values, positionals } = parse(argv, {}, { min: 1, max: 1, names: 'DIR' });
    if (values.help) return -1;
    const { guid, file } = await snapshotStack(await needDir(positionals[0]));
    process.stdout.write(`snapshot ${guid} created; new top delta ${file}\n`);
    return 0;
  },
};

export const merge: Command = {
  name: 'merge',
  summary: 'merge the top delta into the one below (--all: down to one file)',
  usage: `ploop-wasm merge DIR [--all] [--level N]

  Copies every cluster of the upper delta into the delta below it, then drops the upper file
  from DiskDescriptor.xml and removes it. Crash-safe: until the descriptor changes, the stack
  reads the same data either way.
  --all      merge until a single delta is left
  --level N  merge delta N (1 = the one above the base) into N-1 instead of the top`,
  async run(argv) {
    const { values, positionals } = parse(argv, { all: { type: 'boolean' }, level: { type: 'string' } }, { min: 1, max: 1, names: 'DIR' });
    if (values.help) return -1;
    const dir = await needDir(positionals[0]);
    if (values.all) {
      const n = await mergeAll(dir);
      process.stdout.write(`merged ${plural(n, 'delta')}; one delta left\n`);
      return 0;
    }
    const upperLevel = typeof values.level === 'string' ? parseCount(values.level, '--level') : undefined;
    const r = await mergeStack(dir, { upperLevel });
    process.stdout.write(`merged ${r.merged} into ${r.into} (${clusters(r.clustersCopied)} copied)\n`);
    return 0;
  },
};

export const deleteSnapshot: Command = {
  name: 'delete',
  summary: 'delete a snapshot (the delta above it is merged into it)',
  usage: `ploop-wasm delete DIR GUID

  Deletes snapshot GUID (see info DIR) as ploop snapshot-delete does: the delta above it is
  merged into its file, which then carries the upper delta's GUID. The top cannot be deleted.`,
  async run(argv) {
    const { values, positionals } = parse(argv, {}, { min: 2, max: 2, names: 'DIR GUID' });
    if (values.help) return -1;
    const r = await deleteSnapshotStack(await needDir(positionals[0]), positionals[1]);
    process.stdout.write(`deleted snapshot ${positionals[1]}: merged ${r.merged} into ${r.into} (${clusters(r.clustersCopied)} copied)\n`);
    return 0;
  },
};

export const resize: Command = {
  name: 'resize',
  summary: 'grow or shrink an image or a disk folder',
  usage: `ploop-wasm resize IMG|DIR --size SIZE [--force]

  Growing relocates data clusters that sit where the larger BAT goes. Shrinking is refused when
  clusters past the new end hold data, unless --force (they are dropped). A folder's top delta
  and DiskDescriptor.xml are resized; shrinking a folder needs a single delta.`,
  async run(argv) {
    const { values, positionals } = parse(argv, { size: { type: 'string' }, force: { type: 'boolean' } }, { min: 1, max: 1, names: 'IMG|DIR' });
    if (values.help) return -1;
    const size = parseSize(required(values, 'size'), '--size');
    const dir = await stackDirOf(positionals[0]);
    let r;
    if (dir) r = await resizeStack(dir, size, { force: !!values.force });
    else {
      const store = await NodeFileStore.open(positionals[0], { writable: true });
      try {
        r = await resizeImage(store, size, { force: !!values.force });
      } finally {
        await store.close();
      }
    }
    process.stdout.write(`resized from ${formatSize(r.oldSize)} to ${formatSize(r.newSize)}; ${clusters(r.clustersRelocated)} relocated, ${r.clustersDropped} dropped\n`);
    return 0;
  },
};

const clusters = (n: number) => plural(n, 'cluster');
