// SPDX-License-Identifier: MIT
import { LEVEL_NONE } from '../../core/bat-map.js';
import { openImageFile, stackDirOf, readStackDescriptor } from '../open.js';
import { parse } from '../args.js';
import type { Command } from '../command.js';

export const map: Command = {
  name: 'map',
  summary: 'list which virtual ranges hold data and where',
  usage: `ploop-wasm map IMG|DIR [--json]

  One line (or JSON object) per extent: virtual start, length, and where its data is: the file
  (for a disk folder, the delta that holds it, as qemu-img map names the image of a backing
  chain) and the byte offset in that file. Holes read as zeros. --json prints qemu-img map
  --output=json's fields (start, length, depth, present, zero, data, offset; depth 0 is the top
  delta) and "file" for extents with data.`,
  async run(argv) {
    const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, { min: 1, max: 1, names: 'IMG|DIR' });
    if (values.help) return -1;
    const path = positionals[0];
    const dir = await stackDirOf(path);
    // The file of each level, base first: a folder's deltas, or the image itself.
    const files = dir ? (await readStackDescriptor(dir)).chain.map((d) => dir.path(d.file)) : [path];
    const image = await openImageFile(path);
    try {
      const top = image.lowerDeltas.length;
      const extents = image.map().map((e) => {
        const data = e.level !== LEVEL_NONE;
        // qemu-img reports a hole at the depth of the bottom image, where the lookup ended.
        const depth = data ? top - e.level : top;
        return {
          start: e.offset, length: e.length, depth, present: data, zero: !data, data,
          ...(data ? { offset: e.hostOffset, file: files[e.level] } : {}),
        };
      });
      if (values.json) process.stdout.write(JSON.stringify(extents) + '\n');
      else {
        // qemu-img map's table: printf's %#-16x (0 is "0", not "0x0").
        const hex = (n: number) => (n === 0 ? '0' : '0x' + n.toString(16)).padEnd(16);
        const rows = ['Offset          Length          Mapped to       File'];
        for (const e of extents) if (e.data) rows.push(`${hex(e.start)}${hex(e.length)}${hex(e.offset!)}${e.file}`);
        process.stdout.write(rows.join('\n') + '\n');
      }
    } finally {
      await image.close();
    }
    return 0;
  },
};
