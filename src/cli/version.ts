// SPDX-License-Identifier: MIT
// The version `--version` prints: the one in the package.json of the package this module is part
// of. It is looked up from this module's own place, which differs between the sources
// (src/cli/), the compiled modules (dist/src/cli/) and the bundle (dist/bin/cli/, a chunk that
// esbuild names), so the nearest package.json named ploop-wasm above it is the one.

import { readFileSync } from 'node:fs';

export function packageVersion(from: string = import.meta.url): string {
  for (let dir = new URL('./', from); ; dir = new URL('../', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'ploop-wasm' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // no package.json here (or not one we can read): look further up
    }
    if (new URL('../', dir).href === dir.href) throw new Error(`no package.json named ploop-wasm above ${from}`);
  }
}
