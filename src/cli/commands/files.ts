// SPDX-License-Identifier: MIT
// Browsing the filesystem inside a disk image: ls, cat and extract.

import type { FsEntry, OpenedFilesystem } from '../../fs/index.js';
import { walkTree, byName, treeBytes } from '../../fs/walk.js';
import { modeString, timeString } from '../../fs/mode.js';
import { PloopError } from '../../errors.js';
import { openDiskFilesystem } from '../open-disk.js';
import { parse } from '../args.js';
import { writeOut } from '../output.js';
import { Progress } from '../progress.js';
import { extractTree } from '../extract-tree.js';
import type { Command } from '../command.js';

const PARTITION_HELP = `  --partition N  the partition, numbered as Linux numbers them (/dev/sdaN: MBR 1-4 primary,
                 5+ logical; GPT entry index). Without it: the disk's only filesystem, or an
                 error listing the partitions and their filesystems.
  IMG|DIR        a ploop image, a disk folder (or its DiskDescriptor.xml), or a raw image.
  Filesystems: ext2/3/4, FAT12/16/32 (VFAT long names), ISO 9660 (Rock Ridge, Joliet).`;

export const ls: Command = {
  name: 'ls',
  summary: 'list files inside a disk image (ext2/3/4, FAT, ISO 9660)',
  usage: `ploop-wasm ls IMG|DIR [PATH] [--partition N] [--recursive] [--json]

  Lists the directory PATH (default /) like \`ls -l\`: mode, links, uid, gid, size, mtime (UTC),
  name (-> target for symlinks). A symlink PATH is shown itself unless PATH ends in "/".
  --recursive, -R  also every directory below, like \`ls -lR\` (symlinks are not followed)
  --json           one JSON array of entries (in --recursive's order), each
                   {"path","name","type":"file"|"dir"|"symlink"|"other","size","mode","mtime"}
                   plus "target" for symlinks ("error" for an entry that cannot be
                   read); path is absolute from the filesystem's root,
                   mode is st_mode, mtime is seconds since the epoch.
${PARTITION_HELP}
  Exit status 1 when a directory could not be listed (the others still are).`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      partition: { type: 'string' }, recursive: { type: 'boolean', short: 'R' }, json: { type: 'boolean' },
    }, { min: 1, max: 2, names: 'IMG [PATH]' });
    if (values.help) return -1;
    const path = positionals[1] ?? '/';
    const { fs, close } = await openDiskFilesystem(positionals[0], values.partition as string | undefined);
    try {
      return await list(fs, path, !!values.recursive, !!values.json);
    } finally {
      await close();
    }
  },
};

async function list(fs: OpenedFilesystem, path: string, recursive: boolean, json: boolean): Promise<number> {
  let status = 0;
  const top = path.endsWith('/') ? await fs.stat(path) : await fs.lstat(path);
  const out = json ? new JsonArrayWriter() : new LineWriter();
  const entry = async (e: FsEntry) => {
    if (reportUnreadable(e)) status = 1;
    await out.entry(e);
  };
  if (top.type !== 'dir') {
    await entry(top);
  } else if (!recursive) {
    for (const e of (await fs.readdir(top)).sort(byName)) await entry(e);
  } else {
    const onError = (e: PloopError) => {
      process.stderr.write(`ploop-wasm ls: ${e.message}\n`);
      status = 1;
    };
    let first = true;
    for await (const { dir, entries } of walkTree(fs, top, { onError })) {
      await out.heading(dir.path, first);
      first = false;
      for (const e of entries) await entry(e);
    }
  }
  await out.end();
  return status;
}

/** An entry ls cannot describe: said on stderr, and the listing's exit status becomes 1. */
function reportUnreadable(e: FsEntry): boolean {
  if (e.error === undefined) return false;
  process.stderr.write(`ploop-wasm ls: cannot access ${e.path}: ${e.error}\n`);
  return true;
}

class LineWriter {
  async heading(path: string, first: boolean): Promise<void> {
    await writeOut(`${first ? '' : '\n'}${path}:\n`);
  }
  async entry(e: FsEntry): Promise<void> {
    if (e.error !== undefined && e.mode === 0) {
      // As ls -l shows an entry it cannot stat.
      await writeOut(`?????????? ${'?'.padStart(3)} ${'?'.padStart(5)} ${'?'.padStart(5)} ${'?'.padStart(10)} ${'?'.padEnd(16)} ${e.name}\n`);
      return;
    }
    const size = e.type === 'other' && e.rdev ? `${e.rdev >> 8}, ${e.rdev & 0xff}` : String(e.size);
    const name = e.type === 'symlink' ? `${e.name} -> ${e.target ?? ''}` : e.name;
    await writeOut(`${modeString(e.mode)} ${String(e.nlink).padStart(3)} ${String(e.uid).padStart(5)} ${String(e.gid).padStart(5)} ${size.padStart(10)} ${timeString(e.mtime)} ${name}\n`);
  }
  async end(): Promise<void> {}
}

/** One JSON array, written entry by entry (a listing of a million entries is never one string). */
class JsonArrayWriter {
  #count = 0;
  async heading(): Promise<void> {}
  async entry(e: FsEntry): Promise<void> {
    const json: Record<string, unknown> = { path: e.path, name: e.name, type: e.type, size: e.size, mode: e.mode, mtime: Math.floor(e.mtime) };
    if (e.type === 'symlink') json.target = e.target ?? '';
    if (e.error !== undefined) json.error = e.error;
    await writeOut((this.#count++ === 0 ? '[' : ',\n') + JSON.stringify(json));
  }
  async end(): Promise<void> {
    await writeOut(this.#count === 0 ? '[]\n' : ']\n');
  }
}

export const cat: Command = {
  name: 'cat',
  summary: 'write a file inside a disk image to stdout',
  usage: `ploop-wasm cat IMG|DIR PATH [--partition N]

  Writes the bytes of the file PATH (symlinks followed) to stdout, streamed.
${PARTITION_HELP}`,
  async run(argv) {
    const { values, positionals } = parse(argv, { partition: { type: 'string' } }, { min: 2, max: 2, names: 'IMG PATH' });
    if (values.help) return -1;
    const { fs, close } = await openDiskFilesystem(positionals[0], values.partition as string | undefined);
    try {
      for await (const chunk of fs.stream(positionals[1])) await writeOut(chunk);
    } finally {
      await close();
    }
    return 0;
  },
};

export const extract: Command = {
  name: 'extract',
  summary: 'copy files or a directory out of a disk image',
  usage: `ploop-wasm extract IMG|DIR PATH OUTDIR [--partition N] [--force] [--no-owners]

  Copies PATH out of the image, like virt-copy-out: a file or directory PATH lands as
  OUTDIR/its-name, and "/" lands as OUTDIR's contents. OUTDIR must exist. Files keep their
  contents (written sparse), directories, symlinks and hard links their structure, and all of
  them their permission bits and mtimes (symlinks' too). Devices, FIFOs and sockets are
  skipped with a warning. A progress bar is shown on a terminal.
  --force      replace files that exist in OUTDIR (default: refuse)
  --no-owners  do not give files the image's uid/gid (given by default when run as root)
${PARTITION_HELP}
  Exit status 1 when something was skipped or could not be read (the rest is still copied).`,
  async run(argv) {
    const { values, positionals } = parse(argv, {
      partition: { type: 'string' }, force: { type: 'boolean' }, 'no-owners': { type: 'boolean' },
    }, { min: 3, max: 3, names: 'IMG PATH OUTDIR' });
    if (values.help) return -1;
    const [image, path, outDir] = positionals;
    const { fs, close } = await openDiskFilesystem(image, values.partition as string | undefined);
    try {
      const top = path.endsWith('/') ? await fs.stat(path) : await fs.lstat(path);
      const progress = process.stderr.isTTY ? new Progress(`extracting ${top.path}`, await treeBytes(fs, top)) : null;
      const result = await extractTree(fs, top, outDir, {
        force: !!values.force,
        owners: values['no-owners'] ? false : undefined,
        onProgress: (done) => progress?.update(done),
        onWarning: (m) => process.stderr.write(`${progress ? '\n' : ''}ploop-wasm extract: ${m}\n`),
      });
      progress?.done();
      return result.warnings > 0 ? 1 : 0;
    } finally {
      await close();
    }
  },
};
