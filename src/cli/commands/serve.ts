// SPDX-License-Identifier: MIT
import { existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parse, parseCount, UsageError } from '../args.js';
import type { Command } from '../command.js';
import { startStaticServer } from '../../server/static-server.js';

/** dist/web next to this file's build (dist/src/cli/commands → dist/web), or under the repo under tsx. */
export function defaultWebRoot(): string {
  for (const rel of ['../../../web/', '../../../dist/web/']) {
    const dir = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(dir + 'ploop.js')) return dir;
  }
  throw new UsageError('the web build is missing: run "npm run build" first (it writes dist/web)');
}

export const serve: Command = {
  name: 'serve',
  summary: 'serve the demo page (cross-origin isolated) on http://127.0.0.1:PORT',
  usage: `ploop-wasm serve [DIR] [--port N] [--host H] [--no-isolation]

  Serves DIR (default: the built demo page, dist/web) with the COOP/COEP headers that make the
  page cross-origin isolated, so that runners share memory. Byte ranges are honoured, so an
  image served here opens lazily through the HTTP range store. --no-isolation leaves the headers
  out (the page then runs with one in-thread runner). Port: --port, else $PORT, else 8080.
  Runs until interrupted.`,
  async run(argv) {
    const { values, positionals } = parse(
      argv,
      { port: { type: 'string' }, host: { type: 'string' }, 'no-isolation': { type: 'boolean' } },
      { min: 0, max: 1, names: '[DIR]' },
    );
    if (values.help) return -1;
    const root = positionals[0] ?? defaultWebRoot();
    if (positionals[0] !== undefined) await checkRoot(root);
    const portText = (values.port as string | undefined) ?? process.env.PORT ?? '8080';
    const port = parseCount(portText, '--port');
    if (port > 65535) throw new UsageError(`--port: ${port} is not a TCP port (expected 0..65535)`);
    const server = await startStaticServer({
      root,
      port,
      host: (values.host as string | undefined) ?? '127.0.0.1',
      isolated: !values['no-isolation'],
      mounts: existsSync('/usr/share/seabios') ? { '/bios/': '/usr/share/seabios' } : {},
    });
    process.stdout.write(`ploop-wasm demo: ${server.url} (${values['no-isolation'] ? 'not isolated' : 'cross-origin isolated'}; Ctrl-C stops)\n`);
    await new Promise<void>((done) => {
      const stop = () => void server.close().then(done);
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
    return 0;
  },
};

/** A DIR that is missing or a file would be served as nothing but 404s: refused at the start. */
async function checkRoot(root: string): Promise<void> {
  let s;
  try {
    s = await stat(root);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new UsageError(code === 'ENOENT' ? `DIR: "${root}" does not exist, expected a folder to serve` : `DIR: "${root}" cannot be read (${code ?? e}), expected a folder to serve`);
  }
  if (!s.isDirectory()) throw new UsageError(`DIR: "${root}" is not a folder, expected a folder to serve`);
}
