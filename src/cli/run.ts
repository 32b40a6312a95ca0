// SPDX-License-Identifier: MIT
// Runs the CLI with this process's arguments: the module bin/ploop-wasm.ts starts, and the entry
// of the bundled CLI (dist/bin/cli/ploop-wasm.js, scripts/build-cli.mjs), runnable by itself.
import { main, describeError } from './main.js';

// A reader that goes away (read … | head -c 1) fails stdout's next write with EPIPE, an 'error'
// event that would end the process with a stack trace: end quietly instead, with the status of a
// process that SIGPIPE ended (128 + 13), as cat does.
process.stdout.on('error', (e: NodeJS.ErrnoException) => {
  if (e.code === 'EPIPE') process.exit(141);
  lastResort(e);
});

// An error that escapes the commands (a bug: every expected failure is an error main() reports)
// is still one line, with the stack only when PLOOP_WASM_DEBUG asks for it.
function lastResort(e: unknown): void {
  const command = process.argv[2] ?? '';
  const detail = process.env.PLOOP_WASM_DEBUG && e instanceof Error ? `\n${e.stack}` : ' (PLOOP_WASM_DEBUG=1 shows the stack)';
  process.stderr.write(`ploop-wasm ${command}: internal error: ${describeError(e, command)}${detail}\n`);
  process.exit(1);
}
process.on('uncaughtException', lastResort);
process.on('unhandledRejection', lastResort);

process.exitCode = await main(process.argv.slice(2));
