// SPDX-License-Identifier: MIT
// Builds dist/bin/cli/ (or the folder given as argument): the ploop-wasm command as a handful of
// ES modules (esbuild, code splitting). `node dist/bin/cli/ploop-wasm.js ARGS` runs it, and
// dist/bin/ploop-wasm.js runs it when it is at least as new as itself. Node then reads and
// compiles a 3 KiB entry and the chunks of the command that runs (each command is a dynamic
// import in src/cli/main.ts) instead of ~90 separate files, and loads only that command's node:
// built-ins (docs/performance.md, "Process start").
//
// Layout: dist/bin/cli/ is two levels below dist/, as dist/src/core/ is, so the WASM core's
// '../../ploop.wasm' finds dist/ploop.wasm (a folder given as argument needs ploop.wasm two
// levels up likewise); the runner pool starts ./runner-node-worker.js beside its chunk, so the
// worker is an entry here too (sharing chunks with the CLI), and so is NodeFileStore's I/O
// thread, ./node-io-worker.js.

import { build } from 'esbuild';
import { readdirSync, rmSync, mkdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const out = process.argv[2] ? resolve(process.argv[2]) : join(root, 'dist/bin/cli');
mkdirSync(out, { recursive: true });

const result = await build({
  entryPoints: {
    'ploop-wasm': join(root, 'src/cli/run.ts'),
    'runner-node-worker': join(root, 'src/runners/runner-node-worker.ts'),
    'node-io-worker': join(root, 'src/stores/node-io-worker.ts'),
  },
  outdir: out,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  chunkNames: 'chunk-[hash]',
  sourcemap: true,
  metafile: true,
  logLevel: 'warning',
});

// Chunk names carry a content hash: remove the chunks of earlier builds (not emptied first, so
// that a CLI started during the build still finds its files until the new ones are written).
const written = new Set(Object.keys(result.metafile.outputs).map((p) => relative(out, resolve(p))));
for (const file of readdirSync(out)) {
  if (!written.has(file)) rmSync(join(out, file), { force: true });
}
console.log(`cli build: ${[...written].filter((f) => f.endsWith('.js')).length} modules in ${relative(process.cwd(), out) || '.'}`);
