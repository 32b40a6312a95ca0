#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// Entry point of the `ploop-wasm` command; the commands live in src/cli/.
import { main } from '../src/cli/main.js';

process.exitCode = await main(process.argv.slice(2));
