// SPDX-License-Identifier: MIT
// Consistency check and repair, pass by pass like QEMU's parallels_co_check (docs/format.md, 'Check
// and repair'), plus what QEMU 7.2 misses: entries pointing into the header/BAT area, misaligned
// entries and clusters used twice. Repairs copy data before they change the BAT, and flush in
// between.

import { serializeHeader, inUseValid, inUseMessage, INUSE_MAGIC, CLOSED_V21_MAGIC, SECTOR_BYTES, CIF_EMPTY, type PloopHeader, type PloopFormat } from '../format/header.js';
import { LEVEL_NONE, MD_PAGE_BYTES, BatMap, type BatProblem } from '../core/bat-map.js';
import type { BlockStore } from '../stores/block-store.js';
import { PloopImage } from './image.js';
import { unbackedBytesAtLeast, scanZeroRanges, fillZeroRanges, type ZeroRange } from './holes.js';

/**
 * Most bytes a repair writes in one piece: ploop's largest cluster (64 MiB). A header that claims
 * more (QEMU allows up to 2 GiB) is more likely wrong than the data, and a repair that writes
 * gigabytes of zeros for it would not make the image right.
 */
const PLOOP_MAX_CLUSTER_BYTES = 64 << 20;

export type CheckFindingKind = 'unclean' | 'data-off' | 'ext-off' | 'ext-checksum' | 'metadata' | 'outside' | 'misaligned' | 'duplicate' | 'leak' | 'short-file' | 'empty-flag' | 'holes';

export interface CheckFinding {
  kind: CheckFindingKind;
  /**
   * A warning is harmless to QEMU and to this library but refused by the ploop tools (a wrong
   * CIF_Empty flag, holes in the file); it counts as neither corruption nor leak.
   */
  severity: 'corruption' | 'leak' | 'warning';
  message: string;
  clusterIndex?: number;
  fixed: boolean;
}

export interface CheckReport {
  format: PloopFormat;
  /** True when nothing is left to fix (after repair, if repair was asked for). */
  clean: boolean;
  corruptions: number;
  corruptionsFixed: number;
  leakedClusters: number;
  leakedBytes: number;
  leaksFixed: number;
  /** Findings, at most `maxListed` of them (counts above are complete). */
  findings: CheckFinding[];
  totalClusters: number;
  allocatedClusters: number;
  fragmentedClusters: number;
  /** Slots inside the data area that no entry uses (reused by later writes; not a leak). */
  freeClustersInside: number;
  /** Where the used data ends: the file size a clean image has. */
  imageEndOffset: number;
  fileSize: number;
  /**
   * Bytes of the used file that no disk block backs (holes), at least: found by the file's
   * allocated block count, so a few KiB may hide behind the file system's own blocks; after a
   * repair, the bytes its zeros backed. 0 for stores that cannot tell (not a file).
   */
  unbackedBytes: number;
}

export interface CheckOptions {
  /** Fix what is safe to fix. */
  repair?: boolean;
  /** Most findings listed in the report (default 1000). */
  maxListed?: number;
}

/** What the passes share: the image, what they found, and what the repair changed in the header. */
interface CheckRun {
  image: PloopImage;
  header: PloopHeader;
  repair: boolean;
  report: CheckReport;
  list: (f: CheckFinding) => void;
  headerChanged: boolean;
  dataOffRepaired: boolean;
}

/**
 * Check the image on `store` (which stays open), repairing if asked: QEMU's passes in QEMU's
 * order (unclean, data_off, outside image and the other bad entries, leaks), with the format
 * extension, CIF_Empty, a short file and holes besides.
 */
export async function checkImage(store: BlockStore, options: CheckOptions = {}): Promise<CheckReport> {
  const repair = !!options.repair;
  const maxListed = options.maxListed ?? 1000;
  const image = await PloopImage.open(store, { writable: repair, lenient: true, keepStoreOpen: true, onWarning: () => {} });
  const report = newReport(image, await store.size());
  const list = (f: CheckFinding) => {
    if (f.severity === 'corruption') {
      report.corruptions++;
      if (f.fixed) report.corruptionsFixed++;
    }
    if (report.findings.length < maxListed) report.findings.push(f);
  };
  const run: CheckRun = { image, header: image.header, repair, report, list, headerChanged: false, dataOffRepaired: false };
  let morePasses = false;
  try {
    checkUnclean(run);
    checkDataOff(run);
    checkExtension(run);
    morePasses = await checkBatEntries(run);
    checkEmptyFlag(run);
    if (repair && run.headerChanged) {
      const bytes = serializeHeader(run.header);
      image.bat.pages().set(bytes, 0);
      await store.write(0, bytes);
      await store.flush();
    }
    const end = await checkLeaks(run);
    await checkHoles(image, end, repair, list, report);
    Object.assign(report, statistics(image.bat, image.geometry.batEntryCount), { fileSize: await store.size() });
  } finally {
    await image.close();
  }
  // Repairs of BAT problems beyond what one scan records need another pass.
  if (repair && morePasses) {
    const again = await checkImage(store, options);
    if (!again.clean) return { ...again, corruptionsFixed: report.corruptionsFixed + again.corruptionsFixed };
  }
  report.clean = repair
    ? report.corruptions === report.corruptionsFixed && report.leaksFixed === report.leakedClusters
    : report.corruptions === 0 && report.leakedClusters === 0;
  return report;
}

/** 1. Unclean: the in-use flag is still set, or the field holds none of its values. */
function checkUnclean(run: CheckRun): void {
  const { header, repair } = run;
  if (header.inUse !== INUSE_MAGIC && inUseValid(header)) return;
  const message = header.inUse === INUSE_MAGIC ? 'image was not closed correctly (in-use flag set)' : `${inUseMessage(header)}; QEMU reads it as closed`;
  run.list({ kind: 'unclean', severity: 'corruption', message, fixed: repair });
  if (repair) {
    header.inUse = header.extOff !== 0 ? CLOSED_V21_MAGIC : 0;
    run.headerChanged = true;
  }
}

/** 2. data_off. */
function checkDataOff(run: CheckRun): void {
  const { image, header, repair, report } = run;
  if (image.findings.dataOffValid) return;
  const g = image.geometry;
  // A value at or above the minimum is wrong only because the file ends before it: say so.
  const short = header.dataOff >= g.minDataOffSectors ? ` (past the end of the ${report.fileSize}-byte file)` : '';
  // If even the minimum lies past the end, the repair must also grow the file (checkLeaks). Do
  // that only up to ploop's largest cluster: more means the header's cluster size is what is
  // wrong, and growing a store by gigabytes would not make the image right.
  const growBy = g.minDataOffSectors * SECTOR_BYTES - report.fileSize;
  const fixable = growBy <= PLOOP_MAX_CLUSTER_BYTES;
  const why = fixable ? '' : `; not repaired: the file would have to grow by ${growBy} bytes`;
  run.list({ kind: 'data-off', severity: 'corruption', message: `data_off field has incorrect value ${header.dataOff}${short}, expected ${g.minDataOffSectors}${why}`, fixed: repair && fixable });
  if (repair && fixable) {
    header.dataOff = g.minDataOffSectors;
    run.dataOffRepaired = true;
    run.headerChanged = true;
  }
}

/** 3. The format extension: where ext_off points, then its magic and MD5 (QEMU refuses the image when they are wrong). */
function checkExtension(run: CheckRun): void {
  const { image, header, repair } = run;
  const drop = () => {
    header.extOff = 0;
    if (header.inUse === CLOSED_V21_MAGIC) header.inUse = 0;
    run.headerChanged = true;
  };
  if (!image.findings.extOffValid) {
    run.list({ kind: 'ext-off', severity: 'corruption', message: `ext_off ${header.extOff} does not name a whole cluster inside the file`, fixed: repair });
    if (repair) drop();
  }
  if (image.findings.extProblem) {
    run.list({ kind: 'ext-checksum', severity: 'corruption', message: `${image.findings.extProblem}; QEMU refuses to open the image; the repair drops the extension (dirty bitmaps for backup tools, which can no longer be trusted) and leaves every data cluster as it is`, fixed: repair });
    if (repair) {
      // Its cluster is free from now on: unused space inside the file, or a leak at its end.
      image.bat.freeSlot(image.bat.slotOf(header.extOff * SECTOR_BYTES));
      drop();
    }
  }
}

/**
 * 4. BAT entries: into metadata, outside the file, misaligned, duplicated. Returns whether more
 * bad entries exist than one scan records (the repair then runs again).
 */
async function checkBatEntries(run: CheckRun): Promise<boolean> {
  const { image, repair, report } = run;
  const g = image.geometry;
  const { batProblems, batProblemCount } = image.findings;
  // Relocating a bad entry copies its whole cluster: not for a cluster size beyond ploop's.
  const relocatable = g.clusterBytes <= PLOOP_MAX_CLUSTER_BYTES;
  const fixes = (p: BatProblem) => repair && (p.kind === 'outside' || relocatable);
  const notFixed = `; not repaired: relocating it would write a whole ${g.clusterBytes}-byte cluster, more than ploop's largest (${PLOOP_MAX_CLUSTER_BYTES})`;
  for (const p of batProblems) {
    run.list({ kind: p.kind, severity: 'corruption', message: describe(p, g.clusterBytes) + (repair && !fixes(p) ? notFixed : ''), clusterIndex: p.clusterIndex, fixed: fixes(p) });
  }
  for (let i = batProblems.length; i < batProblemCount; i++) {
    report.corruptions++;
    if (repair && relocatable) report.corruptionsFixed++;
  }
  if (repair && batProblemCount > 0) await repairBat(image, batProblems.filter(fixes));
  return batProblemCount > batProblems.length && relocatable;
}

/**
 * CIF_Empty: set iff no cluster is mapped, as ploop's check wants it (QEMU ignores it). An image
 * in use may disagree (the flag is cleared with the in-use flag): the unclean finding covers
 * that, and the repair sets it right with the rest of the header.
 */
function checkEmptyFlag(run: CheckRun): void {
  const { image, header, repair } = run;
  const empty = image.allocatedClusters() === 0;
  if (empty === ((header.flags & CIF_EMPTY) !== 0)) return;
  if (header.inUse !== INUSE_MAGIC) {
    run.list({ kind: 'empty-flag', severity: 'warning', message: `CIF_Empty flag (header flags bit 0) is ${empty ? 0 : 1}, but the image holds ${empty ? 'no' : 'a'} data cluster: harmless to QEMU, which ignores it; ploop's check before 2020 refuses it`, fixed: repair });
  }
  if (repair) {
    header.flags = empty ? header.flags | CIF_EMPTY : header.flags & ~CIF_EMPTY;
    run.headerChanged = true;
  }
}

/** 5. Leaks: bytes past the end of the last used cluster (or a file that ends before it). Returns the image end. */
async function checkLeaks(run: CheckRun): Promise<number> {
  const { image, header, repair, report } = run;
  const store = image.store;
  const end = imageEnd(image, header, run.dataOffRepaired);
  report.imageEndOffset = end;
  const fileSize = await store.size();
  if (fileSize > end) {
    const bytes = fileSize - end;
    report.leakedBytes = bytes;
    report.leakedClusters = Math.ceil(bytes / image.geometry.clusterBytes);
    run.list({ kind: 'leak', severity: 'leak', message: `space leaked at the end of the image ${bytes}`, fixed: repair });
    if (repair) {
      await store.truncate(end);
      await store.flush();
      report.leaksFixed = report.leakedClusters;
    }
  } else if (fileSize < end) {
    await shortFile(image, fileSize, end, repair, run.list);
  }
  return end;
}

function newReport(image: PloopImage, fileSize: number): CheckReport {
  return {
    format: image.geometry.format, clean: false, corruptions: 0, corruptionsFixed: 0, leakedClusters: 0, leakedBytes: 0, leaksFixed: 0,
    findings: [], totalClusters: image.geometry.batEntryCount, allocatedClusters: 0, fragmentedClusters: 0, freeClustersInside: 0,
    imageEndOffset: 0, fileSize, unbackedBytes: 0,
  };
}

/**
 * A file that ends before its last used cluster does (a copy cut short): QEMU reads the bytes
 * that are there and zeros after them, and so does this library, so it is no corruption; the
 * repair grows the file with zeros to whole clusters, which changes no byte a read returns.
 * When even the data area is missing (data_off past the end), the repair grows it as create
 * does, but only by up to ploop's largest cluster: more means the cluster size is what is wrong.
 */
async function shortFile(image: PloopImage, fileSize: number, end: number, repair: boolean, list: (f: CheckFinding) => void): Promise<void> {
  const growBy = end - fileSize;
  const dataArea = !image.findings.dataOffValid;
  if (dataArea && growBy > PLOOP_MAX_CLUSTER_BYTES) return;
  const fixable = growBy <= PLOOP_MAX_CLUSTER_BYTES;
  if (!dataArea) {
    const what = fixable ? 'check --repair extends it with zeros' : `check --repair leaves it: ${growBy} bytes of zeros is more than ploop's largest cluster`;
    list({ kind: 'short-file', severity: 'warning', message: `the file ends ${growBy} bytes before the end of its last used cluster (byte ${end}): QEMU and this library read zeros there, but the ploop tools refuse a file cut inside a cluster; ${what}`, fixed: repair && fixable });
  }
  if (!repair || !fixable) return;
  await image.store.truncate(end);
  await image.store.flush();
}

/**
 * Holes in [0, end): found by the file's block count (holes.ts). Without repair they are
 * reported with the all-zero ranges they must lie in; the repair writes zeros over those ranges
 * (as `ploop check -S` does), which changes no byte that exists, and reports what that backed.
 */
async function checkHoles(image: PloopImage, end: number, repair: boolean, list: (f: CheckFinding) => void, report: CheckReport): Promise<void> {
  const store = image.store;
  const atLeast = await unbackedBytesAtLeast(store, end);
  if (atLeast === 0) return;
  const why = 'harmless to QEMU and to this library, which read them as zeros, but the ploop tools refuse an image with holes ("image is sparse")';
  if (repair) {
    const before = (await store.backing!()).allocatedBytes;
    const filled = await fillZeroRanges(store, end);
    await store.flush();
    report.unbackedBytes = Math.max(atLeast, (await store.backing!()).allocatedBytes - before);
    list({ kind: 'holes', severity: 'warning', message: `${report.unbackedBytes} bytes of the file were holes (no disk block backed them), ${why}: zeros written over the ${filled.count} all-zero ranges they lay in (${filled.bytes} bytes): ${describeRanges(image, filled.ranges, filled.count)}`, fixed: true });
    return;
  }
  report.unbackedBytes = atLeast;
  const ranges: ZeroRange[] = [];
  let count = 0;
  let bytes = 0;
  await scanZeroRanges(store, end, (r) => {
    if (ranges.length < 8) ranges.push(r);
    count++;
    bytes += r.length;
  });
  list({ kind: 'holes', severity: 'warning', message: `${atLeast} bytes or more of the file are holes (no disk block backs them), ${why}; they lie in its ${count} all-zero ranges (${bytes} bytes): ${describeRanges(image, ranges, count)}; check --repair writes zeros there`, fixed: false });
}

/** "bytes 1052672+4096 (cluster 0), …" for the first ranges, naming the cluster that maps each slot. */
function describeRanges(image: PloopImage, ranges: ZeroRange[], count: number): string {
  const bat = image.bat;
  const clusterOfSlot = new Map<number, number>();
  const mapped = image.allocatedClusters();
  for (let c = 0; c < image.geometry.batEntryCount && clusterOfSlot.size < mapped; c++) {
    if (bat.levelOf(c) === bat.topLevel) clusterOfSlot.set(bat.slotOf(bat.lookup(c)), c);
  }
  const where = (offset: number) => {
    if (offset < image.geometry.firstSlotByte) return 'header and BAT';
    const cluster = clusterOfSlot.get(bat.slotOf(offset - ((offset - image.geometry.firstSlotByte) % image.geometry.clusterBytes)));
    return cluster === undefined ? 'unused cluster' : `cluster ${cluster}`;
  };
  const listed = ranges.map((r) => `bytes ${r.offset}+${r.length} (${where(r.offset)})`).join(', ');
  return count > ranges.length ? `${listed}, … (${count - ranges.length} more)` : listed;
}

function describe(p: BatProblem, clusterBytes: number): string {
  switch (p.kind) {
    case 'metadata': return `cluster ${p.clusterIndex} points into the header/BAT area (byte ${p.hostOffset})`;
    case 'outside': return `cluster ${p.clusterIndex} is outside image (byte ${p.hostOffset})`;
    case 'misaligned': return `cluster ${p.clusterIndex} is not aligned to the ${clusterBytes}-byte cluster grid (byte ${p.hostOffset})`;
    case 'duplicate': return `duplicate offset in BAT entry ${p.clusterIndex} (byte ${p.hostOffset})`;
  }
}

/**
 * End of the used data: the end of the highest used slot, at least data_off. A data_off the
 * repair just lowered starts the data area there, not where the opened geometry put it.
 */
function imageEnd(image: PloopImage, header: PloopHeader, dataOffRepaired: boolean): number {
  const bat = image.bat;
  const used = bat.usedSlotsEnd();
  const dataStart = dataOffRepaired ? header.dataOff * SECTOR_BYTES : image.geometry.firstSlotByte;
  return Math.max(used > 0 ? bat.slotOffset(used) : 0, header.dataOff * SECTOR_BYTES, image.geometry.batEndByte, dataStart);
}

/**
 * Entries that start past the file's end are zeroed: there is no byte of theirs to keep, and
 * they read zeros before as after. Every other bad entry (into the header/BAT area, misaligned,
 * duplicated) gets a private copy of what it read in a new cluster, so the repair never changes
 * what a read returns: data written and flushed first, then the BAT pages.
 */
async function repairBat(image: PloopImage, problems: BatProblem[]): Promise<void> {
  const bat = image.bat;
  const store = image.store;
  const g = image.geometry;
  const touchedPages = new Set<number>();
  const relocations: Array<{ clusterIndex: number; value: number }> = [];
  for (const p of problems) {
    if (p.kind === 'outside') {
      bat.setEntryValue(p.clusterIndex, 0, bat.topLevel);
    } else {
      const data = new Uint8Array(g.clusterBytes);
      // A cluster cut short by the end of the file reads zeros past it, as it did before.
      await store.read(p.hostOffset, data);
      const slot = bat.allocSlot();
      await store.write(bat.slotOffset(slot), data);
      relocations.push({ clusterIndex: p.clusterIndex, value: bat.slotValue(slot, g.unitBytes) });
    }
    touchedPages.add(BatMap.pageOf(p.clusterIndex));
  }
  await store.flush();
  for (const r of relocations) bat.setEntryValue(r.clusterIndex, r.value, bat.topLevel);
  const pages = bat.pages();
  for (const page of touchedPages) {
    const start = Math.max(page * MD_PAGE_BYTES, 64);
    const end = Math.min((page + 1) * MD_PAGE_BYTES, g.batEndByte);
    await store.write(start, pages.slice(start, end));
  }
  await store.flush();
}

/** Allocated and fragmented clusters (QEMU: a mapped cluster not right after the mapped one before it), free slots inside. */
function statistics(bat: BatMap, entries: number): Pick<CheckReport, 'allocatedClusters' | 'fragmentedClusters' | 'freeClustersInside'> {
  let allocated = 0;
  let fragmented = 0;
  let previous = -1;
  for (let c = 0; c < entries; c++) {
    if (bat.levelOf(c) === LEVEL_NONE) {
      previous = -1; // QEMU counts fragmentation within runs only
      continue;
    }
    allocated++;
    const host = bat.lookup(c);
    if (previous >= 0 && host !== previous + bat.clusterBytes) fragmented++;
    previous = host;
  }
  let freeInside = 0;
  const used = bat.usedSlotsEnd();
  for (let s = 0; s < used; s++) if (!bat.slotUsed(s)) freeInside++;
  return { allocatedClusters: allocated, fragmentedClusters: fragmented, freeClustersInside: freeInside };
}
