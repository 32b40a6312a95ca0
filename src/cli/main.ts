// SPDX-License-Identifier: MIT
// The ploop-wasm command line: dispatch, help, and turning errors into messages and exit codes.

import { PloopError } from '../errors.js';
import { UsageError } from './args.js';
import type { Command } from './command.js';
import { create } from './commands/create.js';
import { info } from './commands/info.js';
import { check } from './commands/check.js';
import { convert } from './commands/convert.js';
import { read, write } from './commands/read-write.js';
import { replay } from './commands/replay.js';
import { bench } from './commands/bench.js';
import { map } from './commands/map.js';
import { demo } from './commands/demo.js';
import { serve } from './commands/serve.js';
import { boot } from './commands/boot.js';
import { init, snapshot, merge, resize, deleteSnapshot } from './commands/stack.js';

const COMMANDS: Command[] = [create, init, info, check, convert, read, write, map, snapshot, merge, deleteSnapshot, resize, replay, bench, demo, serve, boot];

function help(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return [
    'ploop-wasm: read, write, check and convert ploop (QEMU "parallels") disk images',
    '',
    'usage: ploop-wasm COMMAND [ARGS] (ploop-wasm COMMAND --help for details)',
    '',
    ...COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Sizes take bytes or K, M, G, T suffixes (binary). Exit status: 0 success, 1 error, 2 usage',
    'error (check: 2 corruptions, 3 leaks).',
  ].join('\n');
}

/** Run the CLI; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(help() + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version') {
    process.stdout.write('ploop-wasm 0.1.0\n');
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === name);
  if (!command) {
    process.stderr.write(`ploop-wasm: unknown command "${name}"\n\n${help()}\n`);
    return 2;
  }
  try {
    const status = await command.run(rest);
    if (status === -1) {
      process.stdout.write(`usage: ${command.usage}\n`);
      return 0;
    }
    return status;
  } catch (e) {
    if (e instanceof UsageError) {
      process.stderr.write(`ploop-wasm ${name}: ${e.message}\n\nusage: ${command.usage}\n`);
      return 2;
    }
    const message = e instanceof PloopError ? `${e.message} [${e.code}]` : e instanceof Error ? e.message : String(e);
    process.stderr.write(`ploop-wasm ${name}: ${message}\n`);
    return 1;
  }
}
