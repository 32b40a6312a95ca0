#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// Entry point of the `ploop-wasm` command; the commands live in src/cli/.
//
// The build also bundles the CLI into dist/bin/cli/ (scripts/build-cli.mjs): a few modules
// instead of ~90 files to resolve, read and compile at every start (docs/performance.md,
// "process start"). It runs only when it is at least as new as this file, i.e. made by the same
// build: a later bare `tsc` rewrites this file, and the modules it compiled then win over an
// older bundle. Run from sources (tsx) there is no bundle beside this file.
import { statSync } from 'node:fs';

function freshBundle(): URL | null {
  const bundle = new URL('./cli/ploop-wasm.js', import.meta.url);
  try {
    return statSync(bundle).mtimeMs >= statSync(new URL(import.meta.url)).mtimeMs ? bundle : null;
  } catch {
    return null;
  }
}

const bundle = freshBundle();
await (bundle ? import(bundle.href) : import('../src/cli/run.js'));
