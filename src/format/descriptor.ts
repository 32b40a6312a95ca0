// SPDX-License-Identifier: MIT
// The DiskDescriptor.xml model (docs/format.md, 'DiskDescriptor.xml'): its types, the checks the
// ploop tools make on it (shared by the parser, EFORMAT, and by the writers, EINVAL), the delta
// chain, and the bytes the ploop tools write for it, so that a folder we touch is
// indistinguishable from one the real tools made. Reading untrusted XML is descriptor-parse.ts;
// init and the snapshot, merge and delete edits are descriptor-edits.ts.

import { PloopError, type PloopErrorCode } from '../errors.js';
import { HEADS_NUMBER, SEC_IN_CYL } from './header.js';

/** GUID the ploop tools always give the top (writable) delta (TOPDELTA_UUID). */
export const TOPDELTA_GUID = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';
/** ParentGUID of the base image (NONE_UUID). */
export const NONE_GUID = '{00000000-0000-0000-0000-000000000000}';
/** ploop's `is_valid_blocksize`: a power of two from 64 sectors (32 KiB) ... */
export const MIN_BLOCKSIZE_SECTORS = 64;
/** ... to 131072 sectors (64 MiB). */
export const MAX_BLOCKSIZE_SECTORS = 131072;
/** Root element ploop 9 writes; ploop 1.x and QEMU write `Parallels_disk_image`. Readers ignore it. */
export const DEFAULT_ROOT_ELEMENT = 'Virtuozzo_disk_image';

/** `Compressed` is a ploop (parallels) image, `Plain` a raw file. */
export type DescriptorImageType = 'Compressed' | 'Plain';

/** One `<Image>` of `<Storage>`: a delta file. */
export interface DescriptorImage {
  guid: string;
  type: DescriptorImageType;
  /** As written in `<File>`: relative to the descriptor's folder, or absolute. */
  file: string;
}

/** One `<Shot>` of `<Snapshots>`: a node of the snapshot tree. */
export interface DescriptorSnapshot {
  guid: string;
  /** `NONE_GUID` for the base image. */
  parentGuid: string;
  /** Set (to true) when the shot carries the `<Temporary/>` marker. */
  temporary?: boolean;
}

/** The content of a DiskDescriptor.xml. All sizes are in 512-byte sectors. */
export interface DiskDescriptor {
  /** `Virtuozzo_disk_image` or `Parallels_disk_image`; any name is accepted on read. */
  rootElement: string;
  diskSizeSectors: number;
  cylinders: number;
  heads: number;
  /** CHS sectors per track, not the cluster size. */
  sectors: number;
  padding: number;
  /** Cluster size of every Compressed image, in sectors. */
  blocksizeSectors: number;
  preallocated: boolean;
  /** In document order; ploop appends new deltas at the end. */
  images: DescriptorImage[];
  topGuid: string;
  /** In document order. */
  snapshots: DescriptorSnapshot[];
}

/** One delta of the stack, as `descriptorChain` returns it. */
export interface ChainEntry {
  guid: string;
  file: string;
  type: DescriptorImageType;
}

// ---------------------------------------------------------------------------------------------
// GUIDs

const GUID_PATTERN = /^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$/;

/** ploop's `is_valid_guid`: 38 characters, `{8-4-4-4-12}` hex digits in braces, either case. */
export function isValidGuid(value: unknown): value is string {
  return typeof value === 'string' && GUID_PATTERN.test(value);
}

/** GUIDs compare case-insensitively, as ploop's `guidcmp` (strcasecmp) does. */
export function sameGuid(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/**
 * A fresh random (version 4) GUID in ploop's braced lower-case form.
 * @returns e.g. `{0f3c2a9e-5b7d-4c1e-9a2b-3c4d5e6f7a8b}`
 * @example
 * const snapshotGuid = randomGuid();
 */
export function randomGuid(): string {
  const bytes = new Uint8Array(16);
  globalThis.crypto.getRandomValues(bytes);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  return `{${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}}`;
}

// ---------------------------------------------------------------------------------------------
// Errors and XML characters, shared with descriptor-parse.ts and descriptor-edits.ts

/** Prefix of every error about the document; ENOTSUP for a feature we do not read uses it too. */
export const PARSE_PREFIX = 'invalid DiskDescriptor.xml';
const MODEL_PREFIX = 'invalid disk descriptor';

/** The prefix says whether the document on disk (EFORMAT) or a descriptor from code is at fault. */
export function failWith(code: PloopErrorCode, message: string, data: Record<string, unknown> = {}): never {
  const prefix = code === 'EFORMAT' ? PARSE_PREFIX : MODEL_PREFIX;
  throw new PloopError(code, `${prefix}: ${message}`, data);
}

/** A value for a message, quoted and cut short: a hostile document must not make a huge error. */
export function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? value.slice(0, 80) + '…' : value);
  return String(value);
}

/** XML 1.0 `Char`: what a document may contain, raw or as a character reference. */
export function isXmlChar(code: number): boolean {
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff)
    || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
}

/**
 * Index of the first character that is not an XML 1.0 Char (a lone surrogate counts), or -1.
 * The parser refuses such a document, and the model refuses such a file name, which the
 * serializer could not write.
 */
export function firstNonXmlChar(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.codePointAt(i)!;
    if (!isXmlChar(code)) return i;
    if (code > 0xffff) i++;
  }
  return -1;
}

/** Largest value of ploop's unsigned 32-bit fields (CHS, Padding, Blocksize). */
export const U32_MAX = 0xffffffff;

// ---------------------------------------------------------------------------------------------
// CHS geometry

/**
 * CHS as `ploop init` writes it: Heads 16, Cylinders = size / (16·32), and Sectors recomputed at
 * store time as Disk_size / (Cylinders·Heads) in C unsigned 32-bit arithmetic. The parser fills
 * in values a file omits the same way.
 */
export function initChs(diskSizeSectors: number, chsSizeSectors: number): { cylinders: number; heads: number; sectors: number } {
  const cylinders = Math.floor(chsSizeSectors / (HEADS_NUMBER * SEC_IN_CYL)) % 2 ** 32;
  const trackCount = (cylinders * HEADS_NUMBER) % 2 ** 32;
  // ploop would divide by zero here (disks under 256 KiB); keep the nominal value instead.
  const sectors = trackCount === 0 ? SEC_IN_CYL : Math.floor(diskSizeSectors / trackCount);
  return { cylinders, heads: HEADS_NUMBER, sectors: Math.min(sectors, U32_MAX) };
}

// ---------------------------------------------------------------------------------------------
// Semantic validation, shared by parse (EFORMAT) and by the writers (EINVAL). The order of the
// steps decides which fault of several a descriptor is reported by: keep it.

const XML_NAME = /^[A-Za-z_:][A-Za-z0-9_.:-]*$/;

/** Lower-case GUID → index in document order, as the duplicate and link checks look them up. */
type GuidIndex = Map<string, number>;

function checkUnsigned(code: PloopErrorCode, value: unknown, element: string, max: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    failWith(code, `<${element}> is ${show(value)}, expected an integer from 0 to ${max}`, { element, value });
  }
}

/** The root name, the disk parameters, the cluster size and the shape of the two lists. */
function checkScalars(d: DiskDescriptor, code: PloopErrorCode): void {
  if (d === null || typeof d !== 'object') failWith(code, `expected a descriptor object, got ${show(d)}`);
  if (typeof d.rootElement !== 'string' || !XML_NAME.test(d.rootElement)) {
    failWith(code, `root element name ${show(d.rootElement)} is not an XML name, expected e.g. "${DEFAULT_ROOT_ELEMENT}"`, { element: 'root', value: d.rootElement });
  }
  checkUnsigned(code, d.diskSizeSectors, 'Disk_Parameters/Disk_size', Number.MAX_SAFE_INTEGER);
  checkUnsigned(code, d.cylinders, 'Disk_Parameters/Cylinders', U32_MAX);
  checkUnsigned(code, d.heads, 'Disk_Parameters/Heads', U32_MAX);
  checkUnsigned(code, d.sectors, 'Disk_Parameters/Sectors', U32_MAX);
  checkUnsigned(code, d.padding, 'Disk_Parameters/Padding', U32_MAX);
  const bs = d.blocksizeSectors;
  if (typeof bs !== 'number' || !Number.isInteger(bs) || bs < MIN_BLOCKSIZE_SECTORS || bs > MAX_BLOCKSIZE_SECTORS || (bs & (bs - 1)) !== 0) {
    failWith(code, `<StorageData/Storage/Blocksize> is ${show(bs)}, expected a power of two from ${MIN_BLOCKSIZE_SECTORS} to ${MAX_BLOCKSIZE_SECTORS} sectors (32 KiB to 64 MiB)`,
      { element: 'StorageData/Storage/Blocksize', value: bs });
  }
  if (typeof d.preallocated !== 'boolean') failWith(code, `preallocated is ${show(d.preallocated)}, expected true or false`, { element: 'StorageData/Storage/Preallocated' });
  if (!Array.isArray(d.images) || d.images.length === 0) {
    failWith(code, '<StorageData/Storage> has no <Image>, expected at least one', { element: 'StorageData/Storage/Image' });
  }
  if (!Array.isArray(d.snapshots)) failWith(code, 'snapshots is not an array', { element: 'Snapshots/Shot' });
}

/** Each `<Image>` on its own, then no GUID twice and no Plain image in a preallocated disk. */
function checkImages(d: DiskDescriptor, code: PloopErrorCode): GuidIndex {
  const imageIndex: GuidIndex = new Map();
  d.images.forEach((image, i) => {
    const path = `StorageData/Storage/Image[${i + 1}]`;
    if (!isValidGuid(image?.guid)) {
      failWith(code, `<${path}/GUID> is ${show(image?.guid)}, expected a GUID in braces like ${TOPDELTA_GUID}`, { element: `${path}/GUID`, value: image?.guid });
    }
    if (image.type !== 'Compressed' && image.type !== 'Plain') {
      failWith(code, `<${path}/Type> is ${show(image.type)}, expected "Compressed" or "Plain"`, { element: `${path}/Type`, value: image.type });
    }
    if (typeof image.file !== 'string' || image.file === '' || firstNonXmlChar(image.file) !== -1) {
      failWith(code, `<${path}/File> is ${show(image.file)}, expected a non-empty file name of XML characters`, { element: `${path}/File`, value: image.file });
    }
    const key = image.guid.toLowerCase();
    const previous = imageIndex.get(key);
    if (previous !== undefined) {
      failWith(code, `<${path}/GUID> ${image.guid} repeats the GUID of <Image[${previous + 1}]>, expected every image GUID once`, { element: `${path}/GUID`, value: image.guid });
    }
    imageIndex.set(key, i);
  });
  if (d.preallocated) {
    const plain = d.images.findIndex((image) => image.type === 'Plain');
    if (plain !== -1) {
      failWith(code, `<StorageData/Storage/Preallocated> is 1 but <Image[${plain + 1}]> is Plain, expected no Preallocated with Plain images (as ploop requires)`,
        { element: 'StorageData/Storage/Preallocated' });
    }
  }
  return imageIndex;
}

/** Each `<Shot>` on its own, then no GUID twice and one shot per image. */
function checkShots(d: DiskDescriptor, code: PloopErrorCode): GuidIndex {
  const shotIndex: GuidIndex = new Map();
  d.snapshots.forEach((shot, i) => {
    const path = `Snapshots/Shot[${i + 1}]`;
    if (!isValidGuid(shot?.guid)) {
      failWith(code, `<${path}/GUID> is ${show(shot?.guid)}, expected a GUID in braces like ${TOPDELTA_GUID}`, { element: `${path}/GUID`, value: shot?.guid });
    }
    if (!isValidGuid(shot.parentGuid)) {
      failWith(code, `<${path}/ParentGUID> is ${show(shot.parentGuid)}, expected a GUID in braces, or ${NONE_GUID} for the base`, { element: `${path}/ParentGUID`, value: shot.parentGuid });
    }
    if (shot.temporary !== undefined && typeof shot.temporary !== 'boolean') {
      failWith(code, `<${path}> temporary is ${show(shot.temporary)}, expected true, false or absent`, { element: `${path}/Temporary` });
    }
    const key = shot.guid.toLowerCase();
    const previous = shotIndex.get(key);
    if (previous !== undefined) {
      failWith(code, `<${path}/GUID> ${shot.guid} repeats the GUID of <Shot[${previous + 1}]>, expected every snapshot GUID once`, { element: `${path}/GUID`, value: shot.guid });
    }
    shotIndex.set(key, i);
  });
  if (d.images.length !== d.snapshots.length) {
    failWith(code, `there are ${d.images.length} <Image> and ${d.snapshots.length} <Shot> elements, expected as many shots as images`,
      { images: d.images.length, snapshots: d.snapshots.length });
  }
  return shotIndex;
}

/** `<TopGUID>` names a permanent shot that has an image. */
function checkTop(d: DiskDescriptor, code: PloopErrorCode, shotIndex: GuidIndex, imageIndex: GuidIndex): void {
  if (!isValidGuid(d.topGuid)) {
    failWith(code, `<Snapshots/TopGUID> is ${show(d.topGuid)}, expected a GUID in braces like ${TOPDELTA_GUID}`, { element: 'Snapshots/TopGUID', value: d.topGuid });
  }
  const top = shotIndex.get(d.topGuid.toLowerCase());
  if (top === undefined) {
    failWith(code, `<Snapshots/TopGUID> is ${d.topGuid}, but no <Shot> has that GUID`, { element: 'Snapshots/TopGUID', value: d.topGuid });
  }
  if (d.snapshots[top]!.temporary) {
    failWith(code, `<Snapshots/TopGUID> ${d.topGuid} names a temporary <Shot>, expected a permanent top delta`, { element: 'Snapshots/TopGUID', value: d.topGuid });
  }
  if (!imageIndex.has(d.topGuid.toLowerCase())) {
    failWith(code, `<Snapshots/TopGUID> is ${d.topGuid}, but no <Image> has that GUID`, { element: 'Snapshots/TopGUID', value: d.topGuid });
  }
}

/** Every `<ParentGUID>` names a shot or NONE, and no links form a cycle, off the top's chain too. */
function checkParentLinks(d: DiskDescriptor, code: PloopErrorCode, shotIndex: GuidIndex): void {
  d.snapshots.forEach((shot, i) => {
    if (!sameGuid(shot.parentGuid, NONE_GUID) && !shotIndex.has(shot.parentGuid.toLowerCase())) {
      failWith(code, `<Snapshots/Shot[${i + 1}]/ParentGUID> is ${shot.parentGuid}, but no <Shot> has that GUID, expected a shot's GUID or ${NONE_GUID}`,
        { element: `Snapshots/Shot[${i + 1}]/ParentGUID`, value: shot.parentGuid });
    }
  });
  // Every parent exists, so a walk from any shot either reaches NONE or loops.
  const done = new Set<string>();
  for (const shot of d.snapshots) {
    const path: string[] = [];
    const onPath = new Set<string>();
    for (let guid = shot.guid; !sameGuid(guid, NONE_GUID); guid = d.snapshots[shotIndex.get(guid.toLowerCase())!]!.parentGuid) {
      const key = guid.toLowerCase();
      if (done.has(key)) break;
      if (onPath.has(key)) {
        const loop = path.slice(path.findIndex((g) => sameGuid(g, guid)));
        failWith(code, `<ParentGUID> links form a cycle: ${[...loop, guid].join(' -> ')}, expected every chain to end at ${NONE_GUID}`,
          { element: 'Snapshots/Shot/ParentGUID', value: loop });
      }
      onPath.add(key);
      path.push(guid);
    }
    for (const key of onPath) done.add(key);
  }
}

/**
 * Every check `parseDescriptor` makes on the model, failing with `code`: EFORMAT for a document
 * read from disk, EINVAL for a descriptor built or edited in code.
 */
export function checkDescriptor(d: DiskDescriptor, code: PloopErrorCode): void {
  checkScalars(d, code);
  const imageIndex = checkImages(d, code);
  const shotIndex = checkShots(d, code);
  checkTop(d, code, shotIndex, imageIndex);
  checkParentLinks(d, code, shotIndex);
  walkChain(d, code);
}

/**
 * Check a descriptor as `parseDescriptor` does, for one built or edited in code.
 * @throws PloopError EINVAL naming the element, the value and the expectation
 */
export function validateDescriptor(d: DiskDescriptor): void {
  checkDescriptor(d, 'EINVAL');
}

// ---------------------------------------------------------------------------------------------
// The delta stack

function walkChain(d: DiskDescriptor, code: PloopErrorCode): ChainEntry[] {
  const chain: ChainEntry[] = [];
  const seen: string[] = [];
  let guid = d.topGuid;
  for (;;) {
    if (seen.some((g) => sameGuid(g, guid))) {
      failWith(code, `<ParentGUID> links form a cycle: ${[...seen, guid].join(' -> ')}, expected the chain from <TopGUID> to end at ${NONE_GUID}`,
        { element: 'Snapshots/Shot/ParentGUID', value: seen });
    }
    seen.push(guid);
    const shot = d.snapshots.find((s) => sameGuid(s.guid, guid));
    if (!shot) failWith(code, `the chain from <TopGUID> reaches ${guid}, but no <Shot> has that GUID`, { element: 'Snapshots/Shot', value: guid });
    const image = d.images.find((i) => sameGuid(i.guid, guid));
    if (!image) failWith(code, `the chain from <TopGUID> reaches ${guid}, but no <Image> has that GUID`, { element: 'StorageData/Storage/Image', value: guid });
    chain.push({ guid: image.guid, file: image.file, type: image.type });
    if (sameGuid(shot.parentGuid, NONE_GUID)) break;
    guid = shot.parentGuid;
  }
  return chain.reverse();
}

/**
 * The delta stack, base first and top last, built as ploop builds it: from `<TopGUID>` following
 * `<ParentGUID>` to the shot whose parent is NONE. Images off that chain are ignored.
 * @returns one entry per level (level 0 = base)
 * @throws PloopError EFORMAT on a cycle or a GUID without its `<Shot>` or `<Image>`
 * @example
 * const files = descriptorChain(dd).map((delta) => delta.file); // ['root.hds', 'root.hds.{…}']
 */
export function descriptorChain(d: DiskDescriptor): ChainEntry[] {
  return walkChain(d, 'EFORMAT');
}

// ---------------------------------------------------------------------------------------------
// Writing

/** libxml2's escaping for text content of a document saved without an encoding. */
function escapeText(value: string): string {
  let out = '';
  for (const ch of value) {
    const code = ch.codePointAt(0)!;
    if (ch === '&') out += '&amp;';
    else if (ch === '<') out += '&lt;';
    else if (ch === '>') out += '&gt;';
    else if (ch === '\r') out += '&#13;';
    else if (code > 0x7f) out += `&#x${code.toString(16).toUpperCase()};`;
    else out += ch;
  }
  return out;
}

/**
 * The DiskDescriptor.xml bytes the ploop tools write for this descriptor (`ploop_store_diskdescriptor`
 * saved by libxml2): `<?xml version="1.0"?>`, two-space indent, Start/End/Blocksize/Preallocated
 * before the images, a trailing newline. Start is always 0 and End the disk size, as ploop writes.
 * @throws PloopError EINVAL if the descriptor would not pass `parseDescriptor`
 * @example
 * await writeFile('DiskDescriptor.xml', serializeDescriptor(newDescriptor({ sizeSectors: 131072 })));
 */
export function serializeDescriptor(d: DiskDescriptor): string {
  checkDescriptor(d, 'EINVAL');
  const lines: string[] = ['<?xml version="1.0"?>', `<${d.rootElement}>`];
  const value = (indent: number, name: string, text: string | number) => {
    lines.push(`${' '.repeat(indent)}<${name}>${escapeText(String(text))}</${name}>`);
  };
  lines.push('  <Disk_Parameters>');
  value(4, 'Disk_size', d.diskSizeSectors);
  value(4, 'Cylinders', d.cylinders);
  value(4, 'Heads', d.heads);
  value(4, 'Sectors', d.sectors);
  value(4, 'Padding', d.padding);
  lines.push('  </Disk_Parameters>', '  <StorageData>', '    <Storage>');
  value(6, 'Start', 0);
  value(6, 'End', d.diskSizeSectors);
  value(6, 'Blocksize', d.blocksizeSectors);
  if (d.preallocated) value(6, 'Preallocated', 1);
  for (const image of d.images) {
    lines.push('      <Image>');
    value(8, 'GUID', image.guid);
    value(8, 'Type', image.type);
    value(8, 'File', image.file);
    lines.push('      </Image>');
  }
  lines.push('    </Storage>', '  </StorageData>', '  <Snapshots>');
  value(4, 'TopGUID', d.topGuid);
  for (const shot of d.snapshots) {
    lines.push('    <Shot>');
    value(6, 'GUID', shot.guid);
    value(6, 'ParentGUID', shot.parentGuid);
    if (shot.temporary) lines.push('      <Temporary/>');
    lines.push('    </Shot>');
  }
  lines.push('  </Snapshots>', `</${d.rootElement}>`);
  return lines.join('\n') + '\n';
}
