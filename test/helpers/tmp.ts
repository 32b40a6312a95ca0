// Temporary directories under os.tmpdir(), removed when the test (or suite) ends.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Make a fresh directory; returns its path and a function that removes it. */
export async function makeTempDir(prefix = 'ploop-test-'): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

/** Run `fn` with a fresh temporary directory that is removed afterwards, pass or fail. */
export async function withTempDir<T>(fn: (dir: string) => Promise<T>): Promise<T> {
  const { dir, cleanup } = await makeTempDir();
  try {
    return await fn(dir);
  } finally {
    await cleanup();
  }
}
