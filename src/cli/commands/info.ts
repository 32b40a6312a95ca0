// SPDX-License-Identifier: MIT
import { INUSE_MAGIC } from '../../format/header.js';
import { LEVEL_NONE } from '../../core/bat-map.js';
import { PloopImage } from '../../engine/image.js';
import { openImageFile, stackDirOf, readStackDescriptor, isPloopFile } from '../open.js';
import { NodeFileStore } from '../../stores/node-fs.js';
import { diskOfStore, type DiskReader } from '../../fs/open.js';
import { inspectDisk, type DiskReport } from '../../inspect/index.js';
import { isBrowsable } from '../../fs/open.js';
import { parse, formatSize, plural } from '../args.js';
import type { Command } from '../command.js';

export const info: Command = {
  name: 'info',
  summary: 'show the header and allocation of an image',
  usage: `ploop-wasm info IMG|DIR [--json]

  --json   print one JSON object: format, virtualSize, clusterSize, batEntries, dataOffset,
           inUse, allocatedClusters, fileSize, flags, extOffset, heads, cylinders, tracks,
           damage (what is wrong, one sentence each; [] for a sound image) and damagedClusters
           (cluster, problem: outside|misaligned|duplicate|metadata, hostOffset; up to 4096;
           the text lists the first 64).
  A damaged image is shown as QEMU reads it; check --repair fixes it.
  For a disk folder (DiskDescriptor.xml) the fields describe the top delta, allocatedClusters
  counts clusters any delta maps, and "deltas" lists the stack base first: level, file, guid,
  type, fileSize, allocatedClusters (mapped in that delta's own BAT).
  A raw disk image (no ploop signature, but a partition table or a filesystem on it) gets
  format "raw", virtualSize and fileSize with the partitions.
  "partitionTable" is mbr, gpt or none; "partitions" lists number (as Linux numbers them),
  start, size, type, filesystem (ext4, fat32, … or null), label and browsable (ls, cat and
  extract can read it); "filesystem" is the whole disk's when there is no partition table.`,
  async run(argv) {
    const { values, positionals } = parse(argv, { json: { type: 'boolean' } }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const dir = await stackDirOf(positionals[0]);
    if (!dir && !(await isPloopFile(positionals[0]))) {
      const raw = await describeRaw(positionals[0], !!values.json);
      if (raw) return 0;
    }
    const image = await openImageFile(positionals[0], { lenient: true, onWarning: () => {} });
    try {
      const deltas = dir ? await describeDeltas(dir) : undefined;
      const disk = await describeDisk(image);
      const h = image.header;
      const g = image.geometry;
      const fileSize = await image.store.size();
      const out = {
        file: positionals[0],
        format: g.format,
        virtualSize: g.virtualSize,
        clusterSize: g.clusterBytes,
        batEntries: g.batEntryCount,
        dataOffset: h.dataOff * 512,
        inUse: h.inUse === INUSE_MAGIC,
        allocatedClusters: dir ? mappedClusters(image) : image.allocatedClusters(),
        fileSize,
        flags: h.flags,
        extOffset: h.extOff * 512,
        heads: h.heads,
        cylinders: h.cylinders,
        tracks: h.tracks,
        damage: image.findings.damage,
        damagedClusters: image.findings.batProblems.map((p) => ({ cluster: p.clusterIndex, problem: p.kind, hostOffset: p.hostOffset })),
        ...(deltas ? { deltas } : {}),
        ...disk.json,
      };
      if (values.json) process.stdout.write(JSON.stringify(out) + '\n');
      else {
        const pct = g.batEntryCount ? ((100 * out.allocatedClusters) / g.batEntryCount).toFixed(2) : '0.00';
        process.stdout.write([
          `image: ${out.file}`,
          `file format: ploop ${g.format} (${g.format === 'v1' ? 'WithoutFreeSpace, BAT in sectors' : 'WithouFreSpacExt, BAT in clusters'})`,
          `virtual size: ${formatSize(out.virtualSize)} (${out.virtualSize} bytes)`,
          `file size: ${formatSize(fileSize)} (${fileSize} bytes)`,
          `cluster size: ${formatSize(out.clusterSize)} (${out.clusterSize} bytes)`,
          `BAT entries: ${out.batEntries}`,
          `data offset: ${out.dataOffset} bytes`,
          `allocated clusters: ${out.allocatedClusters}/${out.batEntries} (${pct}%)`,
          `in use: ${out.inUse ? 'yes (not closed cleanly)' : 'no'}`,
          `flags: 0x${out.flags.toString(16)}`,
          `format extension: ${out.extOffset ? `at byte ${out.extOffset}` : 'none'}`,
          `geometry (CHS): ${out.cylinders}/${out.heads}/${out.tracks}`,
          ...damageLines(image.findings),
          ...(deltas ? ['delta stack (base first):', ...deltas.map((d) =>
            `  level ${d.level}: ${d.file} ${d.type === 'Plain' ? 'raw' : d.format} ${formatSize(d.fileSize)}, ${plural(d.allocatedClusters, 'cluster')} ${d.guid}`)] : []),
          ...disk.lines,
        ].join('\n') + '\n');
      }
    } finally {
      await image.close();
    }
    return 0;
  },
};

/** Clusters that some delta of the stack maps. */
function mappedClusters(image: PloopImage): number {
  let n = 0;
  for (const e of image.map()) if (e.level !== LEVEL_NONE) n += Math.ceil((e.offset + e.length) / image.clusterSize) - Math.floor(e.offset / image.clusterSize);
  return n;
}

/** Each delta of a folder's stack, base first, with what its own file holds. */
async function describeDeltas(dir: import('../../stores/node-dir.js').NodeDirectory) {
  const { descriptor, chain } = await readStackDescriptor(dir);
  // A raw delta maps every cluster its length covers, in the stack's cluster size (Blocksize).
  const clusterBytes = descriptor.blocksizeSectors * 512;
  const out = [];
  for (let level = 0; level < chain.length; level++) {
    const { file, guid, type } = chain[level];
    const store = await dir.openStore(file);
    const fileSize = await store.size();
    let allocatedClusters = Math.ceil(fileSize / clusterBytes);
    let format = 'raw';
    if (type !== 'Plain') {
      const image = await PloopImage.open(store, { lenient: true, onWarning: () => {} });
      allocatedClusters = image.allocatedClusters();
      format = image.geometry.format;
      await image.close();
    } else {
      await store.close();
    }
    out.push({ level, file, guid, type, format, fileSize, allocatedClusters });
  }
  return out;
}

/** The partitions and filesystems on the virtual disk, as JSON fields and as text lines. */
async function describeDisk(image: DiskReader): Promise<{ json: Record<string, unknown>; lines: string[] }> {
  let report: DiskReport;
  try {
    report = await inspectDisk((offset, length) => image.read(offset, length), image.size);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    return { json: { partitionTable: null, partitionError: why }, lines: [`partitions: could not be read (${why})`] };
  }
  const fsName = (f: DiskReport['filesystem']) => (f ? `${f.name}${f.label ? ` "${f.label}"` : ''}` : 'no filesystem recognized');
  if (report.scheme === 'none') {
    const f = report.filesystem;
    return {
      json: { partitionTable: 'none', partitions: [], filesystem: f ? { type: f.type, label: f.label, uuid: f.uuid, browsable: isBrowsable(f) } : null },
      lines: [`partitions: none; the whole disk holds ${fsName(f)}`],
    };
  }
  const partitions = report.partitions.map((p) => ({
    number: p.number, start: p.startBytes, size: p.sizeBytes, type: p.typeName, name: p.name || null,
    filesystem: p.filesystem?.type ?? null, label: p.filesystem?.label ?? null, uuid: p.filesystem?.uuid ?? null, browsable: isBrowsable(p.filesystem),
  }));
  return {
    json: { partitionTable: report.scheme, partitions, filesystem: null },
    lines: [
      `partitions (${report.scheme.toUpperCase()}, disk id ${report.diskId}):`,
      ...report.partitions.map((p) => `  ${p.number}: ${formatSize(p.sizeBytes)} at byte ${p.startBytes}, ${p.typeName}${p.name ? ` "${p.name}"` : ''}: ${fsName(p.filesystem)}`),
    ],
  };
}

/**
 * A raw disk image: its size and partitions, as qemu-img info says "file format: raw". Only when
 * there is a partition table or a filesystem to show; anything else is reported as the ploop
 * image it was probably meant to be (false).
 */
async function describeRaw(path: string, json: boolean): Promise<boolean> {
  const store = await NodeFileStore.open(path);
  try {
    const disk = await diskOfStore(store);
    const described = await describeDisk(disk);
    if (described.json.partitionTable === 'none' && described.json.filesystem === null) return false;
    if (described.json.partitionTable === null) return false;
    if (json) process.stdout.write(JSON.stringify({ file: path, format: 'raw', virtualSize: disk.size, fileSize: disk.size, ...described.json }) + '\n');
    else process.stdout.write([`image: ${path}`, 'file format: raw', `virtual size: ${formatSize(disk.size)} (${disk.size} bytes)`, ...described.lines].join('\n') + '\n');
    return true;
  } finally {
    await store.close();
  }
}

/** "damage: none", or what is wrong and which clusters (read as QEMU reads them). */
function damageLines(findings: PloopImage['findings']): string[] {
  if (findings.damage.length === 0) return ['damage: none'];
  const problems = findings.batProblems.slice(0, 64);
  const more = findings.batProblemCount - problems.length;
  return [
    `damage: ${findings.damage.join('; ')}`,
    ...problems.map((p) => `  cluster ${p.clusterIndex}: ${p.kind} (host byte ${p.hostOffset})`),
    ...(more > 0 ? [`  … and ${plural(more, 'more bad entry', 'more bad entries')}`] : []),
    '  reads return what QEMU reads; run `ploop-wasm check --repair` before writing',
  ];
}
