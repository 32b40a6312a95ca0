// SPDX-License-Identifier: MIT
import { INUSE_MAGIC } from '../../format/header.js';
import { openImageFile } from '../open.js';
import { parse, formatSize } from '../args.js';
import type { Command } from '../command.js';

export const info: Command = {
  name: 'info',
  summary: 'show the header and allocation of an image',
  usage: `ploop-wasm info IMG [--json]

  --json   print one JSON object: format, virtualSize, clusterSize, batEntries, dataOffset,
           inUse, allocatedClusters, fileSize, flags, extOffset, heads, cylinders, tracks`,
  async run(argv) {
    const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const image = await openImageFile(positionals[0], { lenient: true, onWarning: () => {} });
    try {
      const h = image.header;
      const g = image.geometry;
      const fileSize = await image.store.size();
      const out = {
        file: positionals[0],
        format: g.format,
        virtualSize: g.virtualSize,
        clusterSize: g.clusterBytes,
        batEntries: g.batEntryCount,
        dataOffset: h.dataOff * 512,
        inUse: h.inUse === INUSE_MAGIC,
        allocatedClusters: image.allocatedClusters(),
        fileSize,
        flags: h.flags,
        extOffset: h.extOff * 512,
        heads: h.heads,
        cylinders: h.cylinders,
        tracks: h.tracks,
      };
      if (values.json) process.stdout.write(JSON.stringify(out) + '\n');
      else {
        const pct = g.batEntryCount ? ((100 * out.allocatedClusters) / g.batEntryCount).toFixed(2) : '0.00';
        process.stdout.write([
          `image: ${out.file}`,
          `file format: ploop ${g.format} (${g.format === 'v1' ? 'WithoutFreeSpace, BAT in sectors' : 'WithouFreSpacExt, BAT in clusters'})`,
          `virtual size: ${formatSize(out.virtualSize)} (${out.virtualSize} bytes)`,
          `file size: ${formatSize(fileSize)} (${fileSize} bytes)`,
          `cluster size: ${formatSize(out.clusterSize)} (${out.clusterSize} bytes)`,
          `BAT entries: ${out.batEntries}`,
          `data offset: ${out.dataOffset} bytes`,
          `allocated clusters: ${out.allocatedClusters}/${out.batEntries} (${pct}%)`,
          `in use: ${out.inUse ? 'yes (not closed cleanly)' : 'no'}`,
          `flags: 0x${out.flags.toString(16)}`,
          `format extension: ${out.extOffset ? `at byte ${out.extOffset}` : 'none'}`,
          `geometry (CHS): ${out.cylinders}/${out.heads}/${out.tracks}`,
        ].join('\n') + '\n');
      }
    } finally {
      await image.close();
    }
    return 0;
  },
};
