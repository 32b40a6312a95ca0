// Debian's ploop tools (1.15) as the second format oracle beside qemu-img: `ploop check` on an
// image we wrote, read-only. Stricter than QEMU in ways that matter to the old ploop kernel
// driver: every byte of the file must be backed by a disk block (no hole: "image is sparse"),
// the file must end at its last used cluster ("Want to trim tail") and be a whole number of
// clusters, and CIF_Empty (header flags bit 0) must say whether any cluster is mapped.

import assert from 'node:assert/strict';
import { open } from 'node:fs/promises';
import { run, describeCheck, qemuCheck, type RunResult } from './qemu.ts';

/**
 * The environment for ploop 1.15: it crashes in `ploop_create_image` (a memcpy) unless the
 * environment is larger; a padding variable of 8 KiB is enough (docs/format.md, 'The oracles').
 */
export const PLOOP_ENV: NodeJS.ProcessEnv = { ...process.env, PLOOP_PAD: 'x'.repeat(8192) };

/** `ploop ARGS…` with PLOOP_ENV. */
export function runPloop(args: string[]): Promise<RunResult> {
  return run('ploop', args, PLOOP_ENV);
}

/**
 * Why ploop's check cannot judge the image at `path`, or null when it can: it refuses clusters
 * that are not a power of two from 32 KiB to 64 MiB, and a data area off the cluster grid or at
 * 0 (old v1 images), as formats in their own right (QEMU accepts them all).
 */
export async function ploopCannotJudge(path: string): Promise<string | null> {
  const handle = await open(path, 'r');
  const header = new Uint8Array(64);
  try {
    await handle.read(header, 0, 64, 0);
  } finally {
    await handle.close();
  }
  const view = new DataView(header.buffer);
  const clusterSectors = view.getUint32(28, true);
  const dataOff = view.getUint32(48, true);
  const pow2 = clusterSectors > 0 && (clusterSectors & (clusterSectors - 1)) === 0;
  if (!pow2 || clusterSectors < 64 || clusterSectors > 131072) return `${clusterSectors * 512}-byte clusters (ploop wants a power of two from 32 KiB to 64 MiB)`;
  if (dataOff === 0 || dataOff % clusterSectors !== 0) return `data_off ${dataOff} sectors is not a whole, non-zero number of clusters`;
  return null;
}

export interface PloopCheck {
  /** Null when ploop can judge the image (else why not: nothing was run). */
  notJudged: string | null;
  /** Every form exited 0 and printed no "Error" (ploop prints some errors with exit 0). */
  clean: boolean;
  /** What each form printed. */
  output: string;
}

/** `ploop check -r`, `-r -f` and `-r -f -c` (read-only: nothing is written) on the image at `path`. */
export async function ploopCheck(path: string): Promise<PloopCheck> {
  const notJudged = await ploopCannotJudge(path);
  if (notJudged) return { notJudged, clean: true, output: '' };
  let clean = true;
  const outputs: string[] = [];
  for (const flags of [[], ['-f'], ['-f', '-c']]) {
    const r = await runPloop(['check', '-r', ...flags, path]);
    const ok = r.code === 0 && !/Error/.test(r.stdout + r.stderr);
    clean &&= ok;
    outputs.push(`ploop check -r ${flags.join(' ')}: ${describeCheck(r)}`);
  }
  return { notJudged, clean, output: outputs.join('\n') };
}

/** ploop's check accepts the image at `path` (where it can judge it at all). */
export async function assertPloopAccepts(path: string, what: string): Promise<void> {
  const r = await ploopCheck(path);
  assert.ok(r.clean, `${what}: ploop check refuses ${path}:\n${r.output}`);
}

/** Both oracles accept the image at `path`: qemu-img check is clean and ploop's check (where it can judge) too. */
export async function assertToolsAccept(path: string, what: string): Promise<void> {
  const q = await qemuCheck(path);
  assert.ok(q.clean, `${what}: qemu-img check is not clean: ${describeCheck(q)}`);
  await assertPloopAccepts(path, what);
}
