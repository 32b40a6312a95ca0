// SPDX-License-Identifier: MIT
import { NodeFileStore } from '../../stores/node-fs.js';
import { createImage } from '../../engine/create.js';
import { parse, parseSize, required, UsageError } from '../args.js';
import type { Command } from '../command.js';

export const create: Command = {
  name: 'create',
  summary: 'create an empty ploop image',
  usage: `ploop-wasm create IMG --size SIZE [--cluster-size SIZE] [--format v1|v2]

  --size SIZE          virtual disk size: bytes or 64M, 10G, ... (rounded up to 512)
  --cluster-size SIZE  cluster size (default 1M, like qemu-img); a multiple of 512
  --format v1|v2       header version (default v2: BAT in clusters; v1: BAT in sectors)`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      size: { type: 'string' }, 'cluster-size': { type: 'string' }, format: { type: 'string' },
    }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const size = parseSize(required(values, 'size'), '--size');
    const clusterSize = values['cluster-size'] ? parseSize(values['cluster-size'] as string, '--cluster-size') : undefined;
    const format = (values.format as string | undefined) ?? 'v2';
    if (format !== 'v1' && format !== 'v2') throw new UsageError(`--format: "${format}" is not v1 or v2`);
    const store = await NodeFileStore.open(positionals[0], { create: true });
    try {
      const h = await createImage(store, { size, clusterSize, format });
      process.stdout.write(`Formatting '${positionals[0]}', fmt=parallels (${format}) size=${h.nbSectors * 512} cluster_size=${h.tracks * 512}\n`);
    } finally {
      await store.close();
    }
    return 0;
  },
};
