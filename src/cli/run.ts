// SPDX-License-Identifier: MIT
// Runs the CLI with this process's arguments: the module bin/ploop-wasm.ts starts, and the entry
// of the bundled CLI (dist/bin/cli/ploop-wasm.js, scripts/build-cli.mjs), runnable by itself.
import { main } from './main.js';

process.exitCode = await main(process.argv.slice(2));
