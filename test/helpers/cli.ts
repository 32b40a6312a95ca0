// Running the ploop-wasm CLI from tests, always the code in the tree: the build
// (dist/bin/ploop-wasm.js, from `npm run build`) when it is newer than every source file;
// otherwise the sources bundled once per test process with esbuild (what tsx runs on; a node
// start then costs ~0.2 s instead of tsx's ~1.3 s); tsx itself as the last resort.

import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readdir, stat, writeFile } from 'node:fs/promises';
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BUILT = join(ROOT, 'dist/bin/ploop-wasm.js');
const SOURCE = join(ROOT, 'bin/ploop-wasm.ts');

export interface CliResult {
  code: number;
  stdout: Buffer;
  stderr: string;
}

async function newestMtime(path: string): Promise<number> {
  const s = await stat(path);
  if (!s.isDirectory()) return s.mtimeMs;
  let newest = 0;
  for (const entry of await readdir(path)) newest = Math.max(newest, await newestMtime(join(path, entry)));
  return newest;
}

let commandLine: Promise<string[]> | null = null;

/** [node args…] that run the CLI: the build if it is up to date, else the sources via tsx. */
export function cliCommand(): Promise<string[]> {
  commandLine ??= (async () => {
    try {
      const built = Math.min((await stat(BUILT)).mtimeMs, (await stat(join(ROOT, 'dist/ploop.wasm'))).mtimeMs);
      const sources = Math.max(await newestMtime(join(ROOT, 'src')), await newestMtime(join(ROOT, 'bin')));
      if (built >= sources) return [BUILT];
    } catch {
      // no build: run the sources
    }
    try {
      return [await bundleSources()];
    } catch {
      return ['--import', 'tsx', '--import', join(ROOT, 'test/helpers/source-workers.ts'), SOURCE];
    }
  })();
  return commandLine;
}

/**
 * Bundle bin/ploop-wasm.ts into a temp dir as <tmp>/a/b/cli.mjs with dist/ploop.wasm beside it at
 * <tmp>/ploop.wasm, where src/core/wasm.ts looks first ('../../ploop.wasm' from the module).
 */
async function bundleSources(): Promise<string> {
  const esbuild = (await import('esbuild')) as typeof import('esbuild');
  const dir = await mkdtemp(join(tmpdir(), 'ploop-cli-'));
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  const outfile = join(dir, 'a/b/cli.mjs');
  await esbuild.build({ entryPoints: [SOURCE], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile, logLevel: 'silent' });
  // replay --runners starts ./runner-node-worker.js beside the bundle (an ES module, like the build's).
  await esbuild.build({ entryPoints: [join(ROOT, 'src/runners/runner-node-worker.ts')], bundle: true, platform: 'node', format: 'esm', target: 'node20', outfile: join(dir, 'a/b/runner-node-worker.js'), logLevel: 'silent' });
  await writeFile(join(dir, 'a/b/package.json'), '{"type":"module"}\n');
  await copyFile(join(ROOT, 'dist/ploop.wasm'), join(dir, 'ploop.wasm'));
  return outfile;
}

/** Run `ploop-wasm args…` with optional stdin; never throws for a non-zero exit. */
export async function cli(args: string[], stdin?: Uint8Array): Promise<CliResult> {
  const command = await cliCommand();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...command, ...args], { stdio: ['pipe', 'pipe', 'pipe'], cwd: ROOT });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err }));
    child.stdin.end(stdin ?? undefined);
  });
}

/** Describe a CLI result for assertion messages. */
export function describeCli(args: string[], r: CliResult): string {
  return `ploop-wasm ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout.toString().slice(0, 2000)}\nstderr: ${r.stderr}`;
}
