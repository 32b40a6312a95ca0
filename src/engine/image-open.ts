// SPDX-License-Identifier: MIT
// Opening an image, the steps before the PloopImage exists: the stack's shape, the BAT map sized
// for what the open may allocate, every delta's BAT loaded and checked, and what the open found
// damaged (a reader reads through it as QEMU does and is told; a writer is refused). Error
// messages name the field, the value and what was expected (docs/format.md, 'Open: what is
// refused').

import {
  parseHeader, deriveGeometry, dataOffValid, dataOffError, inUseValid, inUseMessage, HEADER_BYTES, INUSE_MAGIC, SECTOR_BYTES,
  type Geometry, type PloopHeader,
} from '../format/header.js';
import { BatMap, type BatProblem } from '../core/bat-map.js';
import type { WasmCore } from '../core/wasm.js';
import { extensionProblem, MAX_VERIFIED_EXTENSION_BYTES } from '../format/extension.js';
import { readFully, type BlockStore } from '../stores/block-store.js';
import { PloopError } from '../errors.js';
import type { DeltaSource, LowerDelta, OpenFindings, OpenOptions } from './image.js';

/** Refuse a stack no open can serve: no delta, too many, a raw delta above the base, a writer on a read-only store. */
export function checkStack(deltas: DeltaSource[], options: OpenOptions): void {
  if (deltas.length === 0) throw new PloopError('EINVAL', 'openStack: no deltas given');
  if (deltas.length > 254) throw new PloopError('EINVAL', `openStack: ${deltas.length} deltas, at most 254 are supported`);
  const top = deltas[deltas.length - 1];
  if (top.kind === 'raw') throw new PloopError('EINVAL', `openStack: the top delta ${top.name ?? ''} is raw; only a ploop image can be the top`);
  deltas.slice(1).forEach((d, i) => {
    if (d.kind === 'raw') throw new PloopError('EINVAL', `openStack: delta at level ${i + 1} (${d.name ?? 'unnamed'}) is raw; only the base (level 0) may be raw`);
  });
  if (options.writable && !top.store.writable) {
    throw new PloopError('EREADONLY', `open: read-write requested but store ${top.store.name} is read-only`);
  }
}

/** The BAT map of an open: the top's header and BAT copied in, slots for what it may allocate. */
export function newBatMap(core: WasmCore, geometry: Geometry, header: PloopHeader, batBytes: Uint8Array, fileBytes: number, topLevel: number, writable: boolean): BatMap {
  const fileSlots = Math.max(0, Math.ceil((fileBytes - geometry.firstSlotByte) / geometry.clusterBytes));
  // A read-only open allocates nothing, so its slot bitmap only has to cover the slots the BAT
  // (and a format extension) can name; sizing it from the file size would let a store that
  // lies about its size (an HTTP server claiming a terabyte) cost memory in proportion.
  const slotsNamed = writable ? fileSlots : Math.min(fileSlots, slotsNamedBy(batBytes, header, geometry));
  const bat = new BatMap(core, {
    batEntryCount: geometry.batEntryCount,
    clusterBytes: geometry.clusterBytes,
    mdPageCount: geometry.mdPageCount,
    firstSlotByte: geometry.firstSlotByte,
    // Up to one cluster per entry can be mapped or being allocated, and up to one more per
    // entry can be unmapped by a discard yet not reusable (its slot is freed only after the
    // next flush made the BAT change durable). So a full disk that discards and rewrites
    // clusters without a flush in between needs twice the entries, plus the file's own slots.
    slotCapacity: slotsNamed + 2 * geometry.batEntryCount + 2,
    topLevel,
    unitBytesByLevel: [],
  });
  bat.pages().set(batBytes);
  bat.setUnitBytes(topLevel, geometry.unitBytes);
  return bat;
}

/** Load the top's BAT and every lower delta's into `bat`, and say what is damaged. */
export async function loadDeltas(bat: BatMap, deltas: DeltaSource[], header: PloopHeader, geometry: Geometry, fileBytes: number, options: OpenOptions):
  Promise<{ lowerDeltas: LowerDelta[]; findings: OpenFindings; damage: PloopError[] }> {
  const store = deltas[deltas.length - 1].store;
  const { problems, problemCount } = bat.loadTop(fileBytes);
  const damage: PloopError[] = [];
  if (!dataOffValid(header, fileBytes)) damage.push(dataOffError(header, fileBytes));
  if (problemCount > 0) damage.push(batProblemError(problems[0], problemCount, geometry, fileBytes));
  const lowerDeltas: LowerDelta[] = [];
  for (let level = deltas.length - 2; level >= 0; level--) {
    lowerDeltas.unshift(await loadLower(bat, level, deltas[level], geometry, options, damage));
  }
  const extOffValid = claimExtension(bat, header, geometry, fileBytes);
  if (!extOffValid) damage.push(extOffError(bat, header, geometry, fileBytes));
  const extProblem = extOffValid && header.extOff !== 0 ? await readExtensionProblem(store, header, geometry) : null;
  if (extProblem) damage.push(new PloopError('ECORRUPT', `${extProblem} (QEMU refuses to open such an image); run check --repair`, { field: 'ext_off', value: header.extOff }));
  const findings: OpenFindings = {
    batProblems: problems, batProblemCount: problemCount,
    dataOffValid: dataOffValid(header, fileBytes),
    extOffValid,
    extProblem,
    damage: damage.map((e) => e.message.replace(/; run check --repair$/, '')),
  };
  return { lowerDeltas, findings, damage };
}

/**
 * A writer is refused on any damage; a reader is told once. Returns whether the image was not
 * closed cleanly (a writer then sets the in-use flag itself, and its clean close clears it).
 */
export function announceDamage(header: PloopHeader, findings: OpenFindings, damage: PloopError[], options: OpenOptions, warn: (m: string) => void): boolean {
  if (damage.length > 0 && !options.lenient) {
    if (options.writable) throw header.inUse === INUSE_MAGIC ? new PloopError(damage[0].code, `the image was not closed cleanly and is damaged: ${damage[0].message}`, damage[0].data) : damage[0];
    warn(`the image is damaged, reading it as QEMU does (writing needs check --repair first): ${findings.damage.join('; ')}`);
  }
  const unclean = header.inUse === INUSE_MAGIC || !inUseValid(header);
  if (unclean) {
    const why = header.inUse === INUSE_MAGIC ? 'the image was not closed cleanly (in-use flag set)' : inUseMessage(header);
    // A writer gets here only when the checks an open makes found nothing (every BAT entry,
    // data_off, ext_off): what a crash leaves besides is space past the last cluster, which
    // the clean close of this open trims, as check --repair would.
    warn(options.writable
      ? `${why}; its header and BAT check clean, so it is opened read-write and closed cleanly (space past the last cluster trimmed)`
      : `${why}; run \`ploop-wasm check\``);
  }
  return unclean;
}

/** Merge one lower delta into the map (levels are loaded newest first). */
async function loadLower(bat: BatMap, level: number, source: DeltaSource, top: Geometry, options: OpenOptions, damage: PloopError[]): Promise<LowerDelta> {
  const name = source.name ?? `level ${level}`;
  const fileBytes = await source.store.size();
  if (source.kind === 'raw') {
    bat.setUnitBytes(level, top.clusterBytes);
    bat.loadRaw(level, Math.ceil(fileBytes / top.clusterBytes));
    return { level, kind: 'raw', name, store: source.store, header: null, geometry: null };
  }
  let header: PloopHeader;
  let geometry: Geometry;
  try {
    header = parseHeader(await readFully(source.store, 0, Math.min(HEADER_BYTES, fileBytes)));
    geometry = deriveGeometry(header, fileBytes, !!options.lenient || !options.writable);
  } catch (e) {
    if (e instanceof PloopError) throw new PloopError(e.code, `delta ${name} (level ${level}): ${e.message}`, { ...e.data, level });
    throw e;
  }
  if (geometry.clusterBytes !== top.clusterBytes) {
    throw new PloopError('EFORMAT', `delta ${name} (level ${level}) has ${geometry.clusterBytes}-byte clusters, the top delta has ${top.clusterBytes}; all deltas of a stack must match`, { level });
  }
  if (geometry.batEntryCount > top.batEntryCount) {
    throw new PloopError('EFORMAT', `delta ${name} (level ${level}) has ${geometry.batEntryCount} BAT entries, more than the ${top.batEntryCount} of the delta above it`, { level });
  }
  bat.setUnitBytes(level, geometry.unitBytes);
  const batBytes = await readFully(source.store, HEADER_BYTES, 4 * geometry.batEntryCount);
  geometry = alignSlotGrid(geometry, batBytes);
  const { problems, problemCount } = bat.loadLower(level, batBytes, geometry.batEntryCount, fileBytes, geometry.firstSlotByte);
  if (!dataOffValid(header, fileBytes)) {
    const e = dataOffError(header, fileBytes);
    damage.push(new PloopError(e.code, `delta ${name} (level ${level}): ${e.message}`, { ...e.data, level }));
  }
  if (problemCount > 0) {
    const e = batProblemError(problems[0], problemCount, geometry, fileBytes);
    damage.push(new PloopError(e.code, `delta ${name} (level ${level}): ${e.message}`, { ...e.data, level }));
  }
  return { level, kind: 'ploop', name, store: source.store, header, geometry };
}

/** Keep a format extension cluster from being allocated over or trimmed away. */
function claimExtension(bat: BatMap, header: PloopHeader, g: Geometry, fileBytes: number): boolean {
  if (header.extOff === 0) return true;
  const offset = header.extOff * SECTOR_BYTES;
  const slot = bat.slotOf(offset);
  if (!Number.isInteger(slot) || slot < 0 || offset + g.clusterBytes > fileBytes || slot >= bat.slotCapacity) return false;
  return bat.claimSlot(slot);
}

/**
 * v1 BAT entries count sectors, so a v1 image's clusters may sit anywhere on the sector grid:
 * QEMU reads them where they are. When data_off does not say where the cluster grid starts (0,
 * or a value below the data), every cluster still shares one offset modulo the cluster size:
 * the slot grid starts there. `entries` are the BAT's u32 values.
 */
export function alignSlotGrid(g: Geometry, entries: Uint8Array): Geometry {
  if (g.format !== 'v1') return g;
  const view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  let residue = -1;
  for (let i = 0; i + 4 <= entries.byteLength && i < 4 * g.batEntryCount; i += 4) {
    const host = view.getUint32(i, true) * SECTOR_BYTES;
    if (host === 0 || host < g.firstSlotByte) continue;
    const r = (host - g.firstSlotByte) % g.clusterBytes;
    if (residue === -1) residue = r;
    else if (r !== residue) return g; // clusters off one grid: misaligned entries, for check to report
  }
  return residue > 0 ? { ...g, firstSlotByte: g.firstSlotByte + residue } : g;
}

/** The format extension's problem (extension.ts), for a cluster no bigger than ploop makes. */
async function readExtensionProblem(store: BlockStore, header: PloopHeader, g: Geometry): Promise<string | null> {
  if (g.clusterBytes > MAX_VERIFIED_EXTENSION_BYTES) return null;
  const offset = header.extOff * SECTOR_BYTES;
  return extensionProblem(await readFully(store, offset, g.clusterBytes), offset);
}

/** The ext_off refusal: a cluster outside the file, or one a BAT entry also maps. */
function extOffError(bat: BatMap, header: PloopHeader, g: Geometry, fileBytes: number): PloopError {
  // Inside the file and aligned, the cluster can only have been refused because an entry maps it.
  const offset = header.extOff * SECTOR_BYTES;
  const slot = bat.slotOf(offset);
  const inside = Number.isInteger(slot) && slot >= 0 && offset + g.clusterBytes <= fileBytes;
  const why = inside ? `names the cluster at byte ${offset}, which a BAT entry also maps` : `does not name a whole cluster inside the file (${fileBytes} bytes)`;
  return new PloopError('ECORRUPT', `invalid ploop header: ext_off ${header.extOff} sectors ${why}; run check --repair`, { field: 'ext_off', value: header.extOff });
}

function batProblemError(p: BatProblem, count: number, g: Geometry, fileBytes: number): PloopError {
  const what = {
    metadata: `points into the header/BAT area (data starts at byte ${g.firstSlotByte})`,
    // Name the limit too: the cluster must start within the file (QEMU reads zeros past its end).
    outside: `points past the end of the file (its cluster starts at byte ${p.hostOffset}, the file has ${fileBytes} bytes)`,
    misaligned: `is not a whole number of ${g.clusterBytes}-byte clusters from the data area at byte ${g.firstSlotByte}`,
    duplicate: 'points at a cluster another entry already uses',
  }[p.kind];
  const more = count > 1 ? ` (${count} bad entries in all)` : '';
  return new PloopError('ECORRUPT', `corrupt BAT: entry ${p.clusterIndex} (host byte ${p.hostOffset}) ${what}${more}; run check --repair`,
    { field: 'bat', clusterIndex: p.clusterIndex, hostOffset: p.hostOffset, kind: p.kind, count });
}

/** One past the highest slot that a BAT entry or the format extension names (0 when none). */
function slotsNamedBy(batBytes: Uint8Array, header: PloopHeader, g: Geometry): number {
  const entries = new DataView(batBytes.buffer, batBytes.byteOffset, batBytes.byteLength);
  let highestByte = header.extOff * SECTOR_BYTES;
  for (let i = 0; i < g.batEntryCount; i++) {
    const entry = entries.getUint32(HEADER_BYTES + 4 * i, true);
    if (entry !== 0) highestByte = Math.max(highestByte, entry * g.unitBytes);
  }
  return Math.max(0, Math.floor((highestByte - g.firstSlotByte) / g.clusterBytes) + 1);
}
