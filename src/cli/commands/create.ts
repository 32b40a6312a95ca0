// SPDX-License-Identifier: MIT
import { stat, unlink } from 'node:fs/promises';
import { NodeFileStore } from '../../stores/node-fs.js';
import { createImage } from '../../engine/create.js';
import { newHeader } from '../../format/header.js';
import { PloopError } from '../../errors.js';
import { parse, parseSize, required, UsageError } from '../args.js';
import type { Command } from '../command.js';

export const create: Command = {
  name: 'create',
  summary: 'create an empty ploop image',
  usage: `ploop-wasm create IMG --size SIZE [--cluster-size SIZE] [--format v1|v2] [--force]

  --size SIZE          virtual disk size: bytes or 64M, 10G, ... (rounded up to 512)
  --cluster-size SIZE  cluster size (default 1M, like qemu-img); a multiple of 512
  --format v1|v2       header version (default v2: BAT in clusters; v1: BAT in sectors)
  --force              replace IMG if it exists and is not empty (without it, that is refused)`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      size: { type: 'string' }, 'cluster-size': { type: 'string' }, format: { type: 'string' }, force: { type: 'boolean' },
    }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const path = positionals[0];
    const size = parseSize(required(values, 'size'), '--size');
    const clusterSize = values['cluster-size'] ? parseSize(values['cluster-size'] as string, '--cluster-size') : undefined;
    const format = (values.format as string | undefined) ?? 'v2';
    if (format !== 'v1' && format !== 'v2') throw new UsageError(`--format: "${format}" is not v1 or v2`);
    // The header is built (so the options are checked) before the file is touched: a size or
    // cluster size the format cannot hold leaves no empty file behind.
    newHeader({ size, clusterBytes: clusterSize, format });
    const existing = await refuseToReplace(path, !!values.force);
    const store = await NodeFileStore.open(path, { create: true });
    try {
      const h = await createImage(store, { size, clusterSize, format });
      process.stdout.write(`Formatting '${path}', fmt=parallels (${format}) size=${h.nbSectors * 512} cluster_size=${h.tracks * 512}\n`);
    } catch (e) {
      await store.close().catch(() => {});
      if (!existing) await unlink(path).catch(() => {});
      throw e;
    }
    await store.close();
    return 0;
  },
};

/**
 * Refuse a path that holds something: a folder, or a file with bytes in it unless `force` (an
 * empty file, as `touch` leaves it, holds no data). Returns whether the path existed.
 */
async function refuseToReplace(path: string, force: boolean): Promise<boolean> {
  let s;
  try {
    s = await stat(path);
  } catch {
    return false; // a new file (or one the open will report)
  }
  if (s.isDirectory()) throw new PloopError('EINVAL', `${path} is a folder, expected an image file name (init makes a disk folder)`, { path });
  if (s.size > 0 && !force) throw new PloopError('EINVAL', `${path} already exists (${s.size} bytes); --force replaces it`, { path, size: s.size });
  return true;
}
