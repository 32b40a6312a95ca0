// SPDX-License-Identifier: MIT
import { LEVEL_NONE } from '../../core/bat-map.js';
import { openImageFile } from '../open.js';
import { parse } from '../args.js';
import type { Command } from '../command.js';

export const map: Command = {
  name: 'map',
  summary: 'list which virtual ranges hold data and where',
  usage: `ploop-wasm map IMG [--json]

  One line (or JSON object) per extent: virtual start, length, and the host file offset of
  the data (holes read as zeros). Same fields as qemu-img map --output=json.`,
  async run(argv) {
    const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const image = await openImageFile(positionals[0]);
    try {
      const extents = image.map().map((e) => ({
        start: e.offset, length: e.length, data: e.level !== LEVEL_NONE, ...(e.level !== LEVEL_NONE ? { offset: e.hostOffset } : {}),
      }));
      if (values.json) process.stdout.write(JSON.stringify(extents) + '\n');
      else {
        process.stdout.write('Offset          Length          Mapped to       File\n');
        for (const e of extents) {
          if (!e.data) continue;
          const hex = (n: number) => '0x' + n.toString(16).padEnd(14);
          process.stdout.write(`${hex(e.start)}${hex(e.length)}${hex(e.offset!)}${positionals[0]}\n`);
        }
      }
    } finally {
      await image.close();
    }
    return 0;
  },
};
