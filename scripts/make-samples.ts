// SPDX-License-Identifier: MIT
// Writes the demo's built-in sample disk (scripts/sample/) to dist/web/samples/sample/: a ploop
// folder with DiskDescriptor.xml, root.hds and one snapshot delta. Run by scripts/build-web.mjs
// through tsx; usage: node --import tsx scripts/make-samples.ts [OUT_DIR]

import { mkdirSync, rmSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NodeDirectory } from '../src/stores/node-dir.js';
import { writeSample } from './sample/sample.js';
import { DESCRIPTOR_FILE } from '../src/engine/stack.js';

const out = process.argv[2] ?? fileURLToPath(new URL('../dist/web/samples/', import.meta.url));
// Built in a scratch folder and swapped in, so that a page being served never sees half a sample.
const scratch = join(out, `.sample-${process.pid}`);
const final = join(out, 'sample');
rmSync(scratch, { recursive: true, force: true });
mkdirSync(scratch, { recursive: true });
const { files } = await writeSample(new NodeDirectory(scratch));
// An index for the page: which folder, which descriptor, which delta files (base first).
writeFileSync(join(scratch, 'index.json'), JSON.stringify({ name: 'sample', descriptor: DESCRIPTOR_FILE, files }, null, 2) + '\n');
const old = join(out, `.old-${process.pid}`);
try {
  renameSync(final, old);
} catch {
  // no previous sample
}
renameSync(scratch, final);
rmSync(old, { recursive: true, force: true });
console.log(`samples: ${files.join(', ')} in ${final}`);
