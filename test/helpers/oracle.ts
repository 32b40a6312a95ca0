// The common end of a test: hand the image file to qemu-img (and to ploop's check) and compare
// with the model.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFile } from 'node:fs/promises';
import { qemuCheck, qemuConvertToRaw, describeCheck } from './qemu.ts';
import { assertBytesEqual } from './model.ts';
import { assertPloopAccepts } from './ploop.ts';

/**
 * qemu-img check is clean, ploop's check accepts the image (where it can judge it) and qemu-img
 * convert equals `expected` for the image at `path`. `ploop: false` for a file qemu-img or
 * qemu-io made: QEMU preallocates with fallocate, whose unwritten extents, split by its writes
 * off the cluster grid, ploop's check refuses ("uninitialized blocks … not aligned").
 */
export async function assertQemuAgrees(path: string, expected: Uint8Array, what: string, options: { ploop?: boolean } = {}): Promise<void> {
  const check = await qemuCheck(path);
  assert.ok(check.clean, `${what}: qemu-img check is not clean: ${describeCheck(check)}`);
  if (options.ploop !== false) await assertPloopAccepts(path, what);
  assertBytesEqual(await qemuConvertToRaw(path, `${path}.raw`), expected, `${what}: qemu-img convert vs model`);
}

/** Write image bytes (from a MemoryStore) to `dir` and let qemu judge them. */
export async function assertQemuAgreesOnBytes(dir: string, image: Uint8Array, expected: Uint8Array, what: string): Promise<void> {
  const path = join(dir, 'image.hds');
  await writeFile(path, image);
  await assertQemuAgrees(path, expected, what);
}
