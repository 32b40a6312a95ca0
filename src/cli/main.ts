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
    'Sizes, offsets and lengths take bytes, K, M, G, T suffixes (binary: 1K = 1024) or 0x hex.',
    'Exit status: 0 success, 1 error, 2 usage error (check: 2 corruptions, 3 leaks).',
    'ploop-wasm --version prints the version.',
  ].join('\n');
}

/** Run the CLI; returns the exit status. */
export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write((await help()) + '\n');
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    const { packageVersion } = await import('./version.js');
    process.stdout.write(`ploop-wasm ${packageVersion()}\n`);
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
    process.stderr.write(`ploop-wasm ${name}: ${describeError(e, name)}\n`);
    return 1;
  }
}

/** "camelCase: " or "Class.method: " at the start of a message. */
const API_NAME = /^(?:[a-z]+[A-Z][A-Za-z0-9]*|[A-Z][A-Za-z0-9]*\.[a-z][A-Za-z0-9]*): /;

/** A Node system error (ENOENT, EACCES, …) as libuv reports it, or null. */
function systemError(e: unknown): NodeJS.ErrnoException | null {
  for (let c = e, depth = 0; c instanceof Error && depth < 8; c = c.cause, depth++) {
    const { code, syscall } = c as NodeJS.ErrnoException;
    if (typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) && typeof syscall === 'string') return c as NodeJS.ErrnoException;
  }
  return null;
}

/**
 * One line for an error: its message without the command's name a second time (the engine names
 * the operation, which is often the command: "merge: merge: …"), a system error as its plain
 * words ("no such file or directory", not Node's "ENOENT: …, open 'x'", the path being in the
 * message already) and tagged with its own code rather than the EIO it was wrapped in; nor with
 * the library function that failed.
 */
export function describeError(e: unknown, command: string): string {
  let message = e instanceof Error ? e.message : String(e);
  const sys = systemError(e);
  if (sys) {
    const words = /^E[A-Z0-9]+: (.*?)(?:, [a-z_0-9]+(?: '.*')?)?$/s.exec(sys.message);
    if (words) message = message.split(sys.message).join(words[1]);
  }
  // The library's messages start with the operation, often an API name ("addSnapshot: …",
  // "ParallelImage.open: …"): right for a program that called it, noise after "ploop-wasm CMD:".
  for (;;) {
    const prefix = message.startsWith(`${command}: `) ? command.length + 2 : (API_NAME.exec(message)?.[0].length ?? 0);
    if (prefix === 0) break;
    message = message.slice(prefix);
  }
  const tag = sys?.code ?? (e instanceof PloopError ? e.code : null);
  return tag ? `${message} [${tag}]` : message;
}
