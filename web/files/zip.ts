// SPDX-License-Identifier: MIT
// A folder of the image as a zip, streamed: client-zip writes each entry as its bytes arrive
// (Zip64 past 4 GiB), and the entries come from a walk of the tree, so neither the folder nor
// any one file is ever whole in memory. Unix modes are kept (symlinks as symlinks, as unzip
// restores them).

import { makeZip } from 'client-zip';
import { walkTree, type Filesystem, type FsEntry } from '../../src/browser.js';

export interface ZipProgress {
  files: number;
  bytes: number;
}

/** The zip of `top` (a directory): its entries under "<top's name>/". */
export function zipFolder(fs: Filesystem, top: FsEntry, signal: AbortSignal, onProgress: (p: ZipProgress) => void, onSkipped: (message: string) => void): AsyncIterable<Uint8Array> {
  const root = top.path === '/' ? 'root' : top.name;
  const progress: ZipProgress = { files: 0, bytes: 0 };
  async function* entries() {
    yield { name: `${root}/`, lastModified: new Date(top.mtime * 1000), mode: top.mode & 0o7777 };
    const prefix = top.path === '/' ? '/' : top.path + '/';
    for await (const { entries: list } of walkTree(fs, top, { signal, onError: (e) => onSkipped(e.message) })) {
      for (const e of list) {
        const name = `${root}/${e.path.slice(prefix.length)}`;
        const lastModified = new Date(e.mtime * 1000);
        if (e.type === 'dir') {
          yield { name: `${name}/`, lastModified, mode: e.mode & 0o7777 };
        } else if (e.type === 'symlink') {
          yield { name, lastModified, mode: e.mode, input: e.target ?? '' };
        } else if (e.type === 'file') {
          progress.files++;
          yield { name, lastModified, mode: e.mode & 0o7777, size: e.size, input: counted(fs.stream(e, { signal }), progress, onProgress) };
        } else {
          onSkipped(`${e.path}: special file (mode ${e.mode.toString(8)}) left out of the zip`);
        }
      }
    }
  }
  const stream = makeZip(entries());
  return (async function* () {
    const reader = stream.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      yield value;
    }
  })();
}

async function* counted(chunks: AsyncIterable<Uint8Array>, progress: ZipProgress, onProgress: (p: ZipProgress) => void): AsyncIterable<Uint8Array> {
  for await (const chunk of chunks) {
    progress.bytes += chunk.length;
    onProgress(progress);
    yield chunk;
  }
}
