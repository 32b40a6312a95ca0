// SPDX-License-Identifier: MIT
// Builds dist/web/: the browser bundle of the library (ploop.js), every worker entry
// (src/**/*.worker.ts → NAME.worker.js), the pages of web/ (web/*.ts → *.js, with their .html
// and .css) and ploop.wasm, all in ONE flat folder so that `new URL('./x', import.meta.url)` finds
// the .wasm and the worker files from any of the bundles.

import { build } from 'esbuild';
import { copyFileSync, mkdirSync, readdirSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execFileSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const out = join(root, 'dist/web');

function walk(dir, found = []) {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, found);
    else if (entry.name.endsWith('.worker.ts')) found.push(path);
  }
  return found;
}

// Not emptied first: several processes may build while tests read dist/web; files are replaced.
mkdirSync(out, { recursive: true });

const entryPoints = { ploop: join(root, 'src/browser.ts') };
// The runner's browser entry is runner-browser.worker.ts (beside the Node one, runner-node-worker.ts);
// it ships as runner.worker.js, the name pages and bundler set-ups copy.
for (const worker of walk(join(root, 'src'))) entryPoints[basename(worker, '.ts').replace(/-browser(?=\.worker$)/, '')] = worker;
for (const page of readdirSync(join(root, 'web'))) {
  if (page.endsWith('.ts') && !page.endsWith('.d.ts')) entryPoints[basename(page, '.ts')] = join(root, 'web', page);
}

await build({
  entryPoints,
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: true,
  // Node-only branches (guarded at run time) import node: modules; the browser never runs them.
  external: ['node:*'],
  logLevel: 'warning',
});

for (const file of readdirSync(join(root, 'web'))) {
  if (/\.(html|css|svg|png)$/.test(file)) copyFileSync(join(root, 'web', file), join(out, file));
}
copyFileSync(join(root, 'dist/ploop.wasm'), join(out, 'ploop.wasm'));
if (existsSync(join(root, 'node_modules/v86/build/v86.wasm'))) {
  mkdirSync(join(out, 'v86'), { recursive: true });
  copyFileSync(join(root, 'node_modules/v86/build/v86.wasm'), join(out, 'v86/v86.wasm'));
  copyFileSync(join(root, 'node_modules/v86/build/libv86.mjs'), join(out, 'v86/libv86.mjs'));
}
// The built-in sample disk (our own FAT16 + MBR + snapshot code), generated through tsx.
execFileSync(process.execPath, ['--import', 'tsx', join(root, 'scripts/make-samples.ts'), join(out, 'samples')], { cwd: root, stdio: 'inherit' });
console.log(`web build: ${Object.keys(entryPoints).length} bundles in dist/web`);
