// Delta stacks for tests: the QEMU backing-chain oracle, ploop's descriptor parser as a second
// oracle, whole-stack reads through our engine, and file hashes.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { openStackDir, readDescriptor, descriptorChain, type DeltaDirectory } from '../../src/index.ts';
import { run, runOk, describeCheck } from './qemu.ts';
import { readWhole } from './images.ts';
import { assertPloopAccepts } from './ploop.ts';

/** One level of a QEMU chain: a parallels delta (default) or a raw base. */
export interface ChainFile {
  path: string;
  raw?: boolean;
}

/**
 * The `json:{…}` filename that makes QEMU read `files` (base first, top last) as one backing
 * chain: the top is the outermost node and each "backing" names the level below.
 */
export function qemuChainSpec(files: Array<string | ChainFile>): string {
  let node: Record<string, unknown> | null = null;
  for (const f of files) {
    const { path, raw } = typeof f === 'string' ? { path: f, raw: false } : f;
    const next: Record<string, unknown> = { driver: raw ? 'raw' : 'parallels', file: { driver: 'file', filename: path } };
    if (node) next.backing = node;
    node = next;
  }
  if (!node) throw new Error('qemuChainSpec: no files');
  return `json:${JSON.stringify(node)}`;
}

/** `qemu-img convert -O raw` of a backing chain (base first); returns the raw bytes. */
export async function qemuConvertChain(files: Array<string | ChainFile>, rawPath: string): Promise<Uint8Array> {
  await runOk('qemu-img', ['convert', '-O', 'raw', qemuChainSpec(files), rawPath]);
  try {
    return new Uint8Array(await readFile(rawPath));
  } finally {
    await rm(rawPath, { force: true });
  }
}

export interface SnapshotListRow {
  uuid: string;
  parentUuid: string;
  current: boolean;
  fname: string;
}

/** `ploop snapshot-list -H -o uuid,parent_uuid,current,fname DD`: exit code and parsed rows. */
export async function ploopSnapshotList(ddPath: string): Promise<{ code: number; rows: SnapshotListRow[]; output: string }> {
  const r = await run('ploop', ['snapshot-list', '-H', '-o', 'uuid,parent_uuid,current,fname', ddPath]);
  const rows = r.stdout.split('\n').filter((l) => l.trim() !== '').map((line) => {
    // "current" is "*" or blank, so split on whitespace and see whether a "*" stands third.
    const parts = line.trim().split(/\s+/);
    const current = parts[2] === '*';
    return { uuid: parts[0], parentUuid: parts[1], current, fname: parts.slice(current ? 3 : 2).join(' ') };
  });
  return { code: r.code, rows, output: `exit ${r.code}\nstdout: ${r.stdout}\nstderr: ${r.stderr}` };
}

/**
 * ploop reads the folder's descriptor: snapshot-list exits 0 and lists exactly the chain our
 * parser finds (same files, same GUIDs, parent links, the top marked current).
 */
export async function assertPloopListsChain(dirPath: string, dir: DeltaDirectory, what: string): Promise<void> {
  const chain = descriptorChain(await readDescriptor(dir));
  const list = await ploopSnapshotList(join(dirPath, 'DiskDescriptor.xml'));
  assert.equal(list.code, 0, `${what}: ploop snapshot-list refused our DiskDescriptor.xml: ${list.output}`);
  const byFile = new Map(list.rows.map((r) => [r.fname, r]));
  assert.equal(list.rows.length, chain.length, `${what}: ploop lists ${list.rows.length} deltas, the chain has ${chain.length}: ${list.output}`);
  for (let level = 0; level < chain.length; level++) {
    const row = byFile.get(join(dirPath, chain[level].file));
    assert.ok(row, `${what}: ploop does not list ${chain[level].file}: ${list.output}`);
    assert.equal(row.uuid.toLowerCase(), chain[level].guid.toLowerCase(), `${what}: GUID of ${chain[level].file}`);
    const parent = level === 0 ? '{00000000-0000-0000-0000-000000000000}' : chain[level - 1].guid;
    assert.equal(row.parentUuid.toLowerCase(), parent.toLowerCase(), `${what}: parent of ${chain[level].file}`);
    assert.equal(row.current, level === chain.length - 1, `${what}: ${chain[level].file} current mark`);
  }
}

/** The whole virtual disk of a folder's stack as our engine reads it (read-only open). */
export async function readStack(dir: DeltaDirectory, options: { lenient?: boolean } = {}): Promise<Uint8Array> {
  const image = await openStackDir(dir, { onWarning: () => {}, lenient: options.lenient });
  try {
    return await readWhole(image);
  } finally {
    await image.close();
  }
}

/** The chain's files as absolute paths, base first. */
export async function chainPaths(dirPath: string, dir: DeltaDirectory): Promise<string[]> {
  return descriptorChain(await readDescriptor(dir)).map((e) => join(dirPath, e.file));
}

/** SHA-256 of a file's bytes (hex). */
export async function fileHash(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** SHA-256 of bytes (hex). */
export function bytesHash(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** qemu-img check -f parallels is clean for every file (run side by side), and ploop's check accepts each. */
export async function assertChecksClean(paths: string[], what: string): Promise<void> {
  const results = await Promise.all(paths.map((p) => run('qemu-img', ['check', '-f', 'parallels', p])));
  results.forEach((r, i) => {
    assert.ok(r.code === 0 && /No errors were found/.test(r.stdout), `${what}: qemu-img check ${paths[i]} is not clean: ${describeCheck(r)}`);
  });
  await Promise.all(paths.map((p) => assertPloopAccepts(p, what)));
}

/**
 * QEMU compares the chain (base first) with a raw file of the expected bytes (exit 0 = same
 * content; zero regions are cheap, so huge sparse disks are fine) and reports the same virtual size.
 */
export async function assertQemuChainEquals(files: Array<string | ChainFile>, rawModelPath: string, expectedSize: number, what: string): Promise<void> {
  const spec = qemuChainSpec(files);
  const cmp = await run('qemu-img', ['compare', '-f', 'raw', rawModelPath, spec]);
  assert.equal(cmp.code, 0, `${what}: qemu-img compare with the model: ${describeCheck(cmp)}`);
  // qemu-img info opens without backing files (a json: spec with "backing" is refused): the top's size is the chain's.
  const last = files[files.length - 1];
  const top = typeof last === 'string' ? { path: last, raw: false } : last;
  const info = JSON.parse((await runOk('qemu-img', ['info', '--output=json', '-f', top.raw ? 'raw' : 'parallels', top.path])).stdout) as { 'virtual-size': number };
  assert.equal(info['virtual-size'], expectedSize, `${what}: QEMU's virtual size`);
}
