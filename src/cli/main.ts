// SPDX-License-Identifier: MIT
// The ploop-wasm command line: dispatch, help, and turning errors into messages and exit codes.

import { PloopError } from '../errors.js';
import { UsageError } from './args.js';
import type { Command } from './command.js';

// Each command's module is imported only when that command runs: a start-up then loads the
// modules (and the node: built-ins: http, worker_threads, child_process…) of one command, not
// of all of them (measured in docs/performance.md, "process start"). `--help` loads them all.
const COMMANDS: Array<{ name: string; load: () => Promise<Command> }> = [
  { name: 'create', load: async () => (await import('./commands/create.js')).create },
  { name: 'init', load: async () => (await import('./commands/stack.js')).init },
  { name: 'info', load: async () => (await import('./commands/info.js')).info },
  { name: 'check', load: async () => (await import('./commands/check.js')).check },
  { name: 'convert', load: async () => (await import('./commands/convert.js')).convert },
  { name: 'read', load: async () => (await import('./commands/read-write.js')).read },
  { name: 'write', load: async () => (await import('./commands/read-write.js')).write },
  { name: 'map', load: async () => (await import('./commands/map.js')).map },
  { name: 'ls', load: async () => (await import('./commands/files.js')).ls },
  { name: 'cat', load: async () => (await import('./commands/files.js')).cat },
  { name: 'extract', load: async () => (await import('./commands/files.js')).extract },
  { name: 'snapshot', load: async () => (await import('./commands/stack.js')).snapshot },
  { name: 'merge', load: async () => (await import('./commands/stack.js')).merge },
  { name: 'delete', load: async () => (await import('./commands/stack.js')).deleteSnapshot },
  { name: 'resize', load: async () => (await import('./commands/stack.js')).resize },
  { name: 'replay', load: async () => (await import('./commands/replay.js')).replay },
  { name: 'bench', load: async () => (await import('./commands/bench.js')).bench },
  { name: 'demo', load: async () => (await import('./commands/demo.js')).demo },
  { name: 'serve', load: async () => (await import('./commands/serve.js')).serve },
  { name: 'boot', load: async () => (await import('./commands/boot.js')).boot },
];

async function help(): Promise<string> {
  const commands = await Promise.all(COMMANDS.map((c) => c.load()));
  const width = Math.max(...commands.map((c) => c.name.length));
  return [
    'ploop-wasm: read, write, check and convert ploop (QEMU "parallels") disk images',
    '',
    'usage: ploop-wasm COMMAND [ARGS] (ploop-wasm COMMAND --help for details)',
    '',
    ...commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`),
    '',
    'Sizes take bytes or K, M, G, T suffixes (binary). Exit status: 0 success, 1 error, 2 usage',
    'error (check: 2 corruptions, 3 leaks).',
  ].join('\n');
}

/** Run the CLI; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write((await help()) + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version') {
    process.stdout.write('ploop-wasm 0.1.0\n');
    return 0;
  }
  const entry = COMMANDS.find((c) => c.name === name);
  if (!entry) {
    process.stderr.write(`ploop-wasm: unknown command "${name}"\n\n${await help()}\n`);
    return 2;
  }
  const command = await entry.load();
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
