// Running qemu-img / qemu-io (the oracle) through child_process.execFile.

import { execFile } from 'node:child_process';
import { readFile, rm } from 'node:fs/promises';

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a program; never throws for a non-zero exit (the result carries the code). */
export function run(program: string, args: string[], env?: NodeJS.ProcessEnv): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    execFile(program, args, { maxBuffer: 16 << 20, encoding: 'utf8', env }, (error, stdout, stderr) => {
      if (error && typeof (error as NodeJS.ErrnoException).code === 'string') {
        reject(new Error(`${program} could not be started: ${error.message}`));
        return;
      }
      const code = error ? ((error as { code?: number }).code ?? 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

/** Run a program and fail unless it exits 0. */
export async function runOk(program: string, args: string[]): Promise<RunResult> {
  const r = await run(program, args);
  if (r.code !== 0) throw new Error(`${program} ${args.join(' ')} exited ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
  return r;
}

/** `qemu-img create -f parallels [-o cluster_size=N] path size`. */
export function qemuCreate(path: string, size: number | string, clusterSize?: number | string): Promise<RunResult> {
  const args = ['create', '-q', '-f', 'parallels'];
  if (clusterSize !== undefined) args.push('-o', `cluster_size=${clusterSize}`);
  args.push(path, String(size));
  return runOk('qemu-img', args);
}

/** `qemu-io -f parallels -c cmd1 -c cmd2 … path` (read-write unless readOnly). */
export function qemuIo(path: string, commands: string[], options: { readOnly?: boolean } = {}): Promise<RunResult> {
  const args = ['-f', 'parallels'];
  if (options.readOnly) args.push('-r');
  for (const c of commands) args.push('-c', c);
  args.push(path);
  return runOk('qemu-io', args);
}

/** A pattern write as qemu-io spells it. */
export function ioWrite(pattern: number, offset: number, length: number): string {
  return `write -P 0x${pattern.toString(16).padStart(2, '0')} ${offset} ${length}`;
}

/** `qemu-img convert -f parallels -O raw` into `rawPath`; returns the raw bytes (and removes the file). */
export async function qemuConvertToRaw(path: string, rawPath: string): Promise<Uint8Array> {
  await runOk('qemu-img', ['convert', '-f', 'parallels', '-O', 'raw', path, rawPath]);
  try {
    return new Uint8Array(await readFile(rawPath));
  } finally {
    await rm(rawPath, { force: true });
  }
}

export interface QemuCheck extends RunResult {
  /** True when qemu-img check exits 0 and says "No errors were found". */
  clean: boolean;
}

/** `qemu-img check -f parallels [-r all] path`. */
export async function qemuCheck(path: string, options: { repair?: boolean } = {}): Promise<QemuCheck> {
  const args = ['check', '-f', 'parallels'];
  if (options.repair) args.push('-r', 'all');
  args.push(path);
  const r = await run('qemu-img', args);
  return { ...r, clean: r.code === 0 && /No errors were found/.test(r.stdout) };
}

/** Describe a check result for assertion messages. */
export function describeCheck(r: RunResult): string {
  return `exit ${r.code}\nstdout: ${r.stdout.trim()}\nstderr: ${r.stderr.trim()}`;
}

/**
 * Start `qemu-io` on `path` with `commands` followed by a long sleep, wait until `ready()` says
 * the image is in the wanted state, then kill that qemu-io (SIGKILL, by its own handle): an
 * image as a crashed QEMU leaves it.
 */
export async function qemuIoKilledWhenReady(path: string, commands: string[], ready: () => Promise<boolean>, timeoutMs = 10000): Promise<void> {
  const { spawn } = await import('node:child_process');
  const args = ['-f', 'parallels', ...commands.flatMap((c) => ['-c', c]), '-c', 'sleep 600000', path];
  const child = spawn('qemu-io', args, { stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  try {
    const start = Date.now();
    for (;;) {
      if (child.exitCode !== null) throw new Error(`qemu-io exited early with ${child.exitCode}`);
      if (await ready()) break;
      if (Date.now() - start > timeoutMs) throw new Error('qemu-io did not reach the wanted state in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  }
}
