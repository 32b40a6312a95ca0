// SPDX-License-Identifier: MIT
// DiskDescriptor.xml (docs/format.md, 'DiskDescriptor.xml'): parse it with the ploop tools' own
// rules, write it byte for byte as they do, and make the edits their snapshot, merge and delete
// commands make, so that a folder we touch is indistinguishable from one the real tools made.
//
// The XML is read by fast-xml-parser (pure JS, browser and Node). The document is untrusted: it is
// size-capped, must contain only XML 1.0 characters, may not carry a DOCTYPE or any entity
// declaration, and only the five predefined entities and character references are decoded.

import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { PloopError, type PloopErrorCode } from '../errors.js';
import { HEADS_NUMBER, SEC_IN_CYL } from './header.js';

/** GUID the ploop tools always give the top (writable) delta (TOPDELTA_UUID). */
export const TOPDELTA_GUID = '{5fbaabe3-6958-40ff-92a7-860e329aab41}';
/** ParentGUID of the base image (NONE_UUID). */
export const NONE_GUID = '{00000000-0000-0000-0000-000000000000}';
/** Largest DiskDescriptor.xml we read, in UTF-8 bytes. A real one is about 1 KiB per image. */
export const MAX_DESCRIPTOR_BYTES = 1 << 20;
/** ploop's `is_valid_blocksize`: a power of two from 64 sectors (32 KiB) ... */
export const MIN_BLOCKSIZE_SECTORS = 64;
/** ... to 131072 sectors (64 MiB). */
export const MAX_BLOCKSIZE_SECTORS = 131072;
/** ploop refuses a snapshot once the top's chain holds more than 126 images (128 minus the base and one reserved). */
export const MAX_CHAIN_BEFORE_SNAPSHOT = 126;
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

/** Result of an edit that may make a delta file obsolete. */
export interface DescriptorEdit {
  descriptor: DiskDescriptor;
  /** The `<File>` the real tool deletes after storing the new descriptor, or null. */
  removedFile: string | null;
}

// ---------------------------------------------------------------------------------------------
// GUIDs

const GUID_PATTERN = /^\{[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\}$/;

/** ploop's `is_valid_guid`: 38 characters, `{8-4-4-4-12}` hex digits in braces, either case. */
export function isValidGuid(value: unknown): value is string {
  return typeof value === 'string' && GUID_PATTERN.test(value);
}

/** GUIDs compare case-insensitively, as ploop's `guidcmp` (strcasecmp) does. */
function sameGuid(a: string, b: string): boolean {
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
// Errors

const PARSE_PREFIX = 'invalid DiskDescriptor.xml';
const MODEL_PREFIX = 'invalid disk descriptor';

function failWith(code: PloopErrorCode, message: string, data: Record<string, unknown> = {}): never {
  const prefix = code === 'EFORMAT' ? PARSE_PREFIX : MODEL_PREFIX;
  throw new PloopError(code, `${prefix}: ${message}`, data);
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? value.slice(0, 80) + '…' : value);
  return String(value);
}

// ---------------------------------------------------------------------------------------------
// Untrusted XML → element tree

interface XmlElement {
  readonly name: string;
  readonly children: readonly XmlElement[];
  /** The element's own text nodes (and CDATA), concatenated. */
  readonly text: string;
}

const XML_NAMED_ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** XML 1.0 `Char`: what a document may contain, raw or as a character reference. */
function isXmlChar(code: number): boolean {
  return code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff)
    || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
}

/** Index of the first character that is not an XML 1.0 Char (a lone surrogate counts), or -1. */
function firstNonXmlChar(text: string): number {
  for (let i = 0; i < text.length; i++) {
    const code = text.codePointAt(i)!;
    if (!isXmlChar(code)) return i;
    if (code > 0xffff) i++;
  }
  return -1;
}

function lineAndColumn(text: string, index: number): string {
  let line = 1;
  let lineStart = 0;
  for (let i = text.indexOf('\n'); i !== -1 && i < index; i = text.indexOf('\n', i + 1)) {
    line++;
    lineStart = i + 1;
  }
  return `line ${line}, column ${index - lineStart + 1}`;
}

/**
 * The parser's entity hook. Only the five predefined entities and character references are
 * decoded; an undefined entity fails instead of passing through as text. The parser calls
 * `addInputEntities` only after it has read a DOCTYPE, which the pre-scan already refuses: this
 * is the second lock on the same door.
 */
class StrictEntityDecoder {
  setExternalEntities(entities: Record<string, string>): void {
    if (Object.keys(entities).length > 0) failWith('EFORMAT', 'entity definitions are not allowed');
  }

  addInputEntities(_entities: Record<string, string>): void {
    failWith('EFORMAT', 'a DOCTYPE declaration is not allowed (ploop never writes one; refused to rule out entity expansion)');
  }

  reset(): void {}

  setXmlVersion(_version: number): void {}

  decode(text: string): string {
    let out = '';
    let from = 0;
    for (let amp = text.indexOf('&'); amp !== -1; amp = text.indexOf('&', from)) {
      out += text.slice(from, amp);
      const semi = text.indexOf(';', amp);
      if (semi === -1) failWith('EFORMAT', `malformed XML: "&" without a closing ";" in ${show(text)}`);
      const name = text.slice(amp + 1, semi);
      if (Object.hasOwn(XML_NAMED_ENTITIES, name)) {
        out += XML_NAMED_ENTITIES[name];
      } else if (/^#[0-9]{1,7}$/.test(name) || /^#x[0-9a-fA-F]{1,6}$/.test(name)) {
        const code = name[1] === 'x' ? parseInt(name.slice(2), 16) : parseInt(name.slice(1), 10);
        if (!isXmlChar(code)) failWith('EFORMAT', `malformed XML: character reference "&${name};" is not an XML character`);
        out += String.fromCodePoint(code);
      } else {
        failWith('EFORMAT', `malformed XML: undefined entity "&${name};", expected &amp; &lt; &gt; &quot; &apos; or a character reference`,
          { value: name });
      }
      from = semi + 1;
    }
    return out + text.slice(from);
  }
}

const xmlParser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: false,
  entityDecoder: new StrictEntityDecoder(),
  // The deepest ploop element is at depth 4.
  maxNestedTags: 32,
});

/** Refuse `<!DOCTYPE` and `<!ENTITY` anywhere (any case), before any parser sees the text. */
function findDeclaration(text: string): { index: number; keyword: string } | null {
  for (let i = text.indexOf('<!'); i !== -1; i = text.indexOf('<!', i + 2)) {
    for (const keyword of ['DOCTYPE', 'ENTITY']) {
      if (text.slice(i + 2, i + 2 + keyword.length).toUpperCase() === keyword) return { index: i, keyword };
    }
  }
  return null;
}

function buildTree(nodes: readonly unknown[]): { elements: XmlElement[]; text: string } {
  const elements: XmlElement[] = [];
  let text = '';
  for (const node of nodes) {
    if (node === null || typeof node !== 'object') continue;
    for (const [key, value] of Object.entries(node)) {
      if (key === '#text') {
        text += String(value);
      } else if (key !== ':@') {
        if (key.startsWith('!') || key.startsWith('?')) {
          failWith('EFORMAT', `malformed XML: markup "<${key}" is not allowed inside an element`, { element: key });
        }
        const inner = buildTree(Array.isArray(value) ? value : []);
        elements.push({ name: key, children: inner.elements, text: inner.text });
      }
    }
  }
  return { elements, text };
}

/** The parser's own message, cut short: for 300,000 unclosed tags it lists every one of them. */
function brief(message: string): string {
  return message.length <= 300 ? message : `${message.slice(0, 300)}… (${message.length} characters)`;
}

function parseXmlTree(xmlText: string): XmlElement {
  let text = xmlText;
  // A UTF-16 code unit never encodes to fewer than one UTF-8 byte, so a long string fails unencoded.
  const bytes = text.length > MAX_DESCRIPTOR_BYTES ? text.length : new TextEncoder().encode(text).length;
  if (bytes > MAX_DESCRIPTOR_BYTES) {
    failWith('EFORMAT', `the document is ${text.length > MAX_DESCRIPTOR_BYTES ? 'at least ' : ''}${bytes} bytes, expected at most ${MAX_DESCRIPTOR_BYTES} (1 MiB)`,
      { limit: MAX_DESCRIPTOR_BYTES, value: bytes });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  const bad = firstNonXmlChar(text);
  if (bad !== -1) {
    const code = text.codePointAt(bad)!;
    failWith('EFORMAT', `malformed XML: character U+${code.toString(16).toUpperCase().padStart(4, '0')} at ${lineAndColumn(text, bad)} is not allowed in XML`,
      { value: code });
  }
  const declaration = findDeclaration(text);
  if (declaration) {
    failWith('EFORMAT',
      `<!${declaration.keyword} at ${lineAndColumn(text, declaration.index)}: DOCTYPE and ENTITY declarations are not allowed (ploop never writes them; refused to rule out entity expansion and external entities)`,
      { element: `!${declaration.keyword}` });
  }
  const validation = XMLValidator.validate(text);
  if (validation !== true) {
    const { msg, line, col } = validation.err;
    failWith('EFORMAT', `malformed XML at line ${line}${col ? `, column ${col}` : ''}: ${brief(msg)}`, { line, column: col });
  }
  let nodes: unknown;
  try {
    nodes = xmlParser.parse(text);
  } catch (e) {
    if (e instanceof PloopError) throw e;
    failWith('EFORMAT', `malformed XML: ${brief(e instanceof Error ? e.message : String(e))}`);
  }
  const { elements } = buildTree(Array.isArray(nodes) ? nodes : []);
  if (elements.length !== 1) failWith('EFORMAT', `malformed XML: ${elements.length} root elements, expected one`);
  return elements[0]!;
}

// ---------------------------------------------------------------------------------------------
// Element tree → DiskDescriptor, with ploop's parse_xml rules

/** The first child element with this name, as ploop's `seek` finds it (later duplicates are ignored). */
function child(element: XmlElement, name: string): XmlElement | undefined {
  return element.children.find((c) => c.name === name);
}

/** Text of a value element; ploop takes its first text node, so element children make no sense there. */
function valueText(element: XmlElement, path: string): string {
  if (element.children.length > 0) {
    failWith('EFORMAT', `<${path}> contains element <${element.children[0]!.name}>, expected text only`, { element: path });
  }
  return element.text;
}

function parseUnsigned(text: string, path: string, max: number): number {
  if (!/^(0|[1-9][0-9]*)$/.test(text)) {
    failWith('EFORMAT', `<${path}> is ${show(text)}, expected a decimal integer`, { element: path, value: text });
  }
  const value = Number(text);
  if (value > max) failWith('EFORMAT', `<${path}> is ${text}, expected at most ${max}`, { element: path, value: text });
  return value;
}

function optionalUnsigned(parent: XmlElement, name: string, path: string, max: number): number | undefined {
  const element = child(parent, name);
  return element === undefined ? undefined : parseUnsigned(valueText(element, `${path}/${name}`), `${path}/${name}`, max);
}

/**
 * ploop reads every element sibling after the first `<Image>` (`<Shot>`) as another Image (Shot),
 * so anything else there breaks it ("'GUID' node not found"). Returns that run of elements.
 */
function listFrom(parent: XmlElement, name: string, parentPath: string): XmlElement[] {
  const first = parent.children.findIndex((c) => c.name === name);
  if (first === -1) return [];
  const list = parent.children.slice(first);
  const stray = list.find((c) => c.name !== name);
  if (stray) {
    failWith('EFORMAT',
      `<${parentPath}> has <${stray.name}> after the first <${name}>, expected only <${name}> elements there (ploop reads each element after the first <${name}> as one)`,
      { element: `${parentPath}/${stray.name}` });
  }
  return list;
}

function unsupported(parent: XmlElement, name: string, path: string, what: string): void {
  if (child(parent, name)) {
    throw new PloopError('ENOTSUP', `${PARSE_PREFIX}: <${path}/${name}> (${what}) is not supported`, { element: `${path}/${name}` });
  }
}

const U32_MAX = 0xffffffff;

/**
 * Parse and validate a DiskDescriptor.xml as the ploop tools read it (docs/format.md, 'How the
 * ploop tools parse it'), plus the link checks ploop makes only when it walks the chain: every
 * ParentGUID must name a shot or be NONE, no cycles, and the top's chain must reach the base with
 * an `<Image>` for each shot.
 *
 * Like ploop it accepts any root element name, no XML declaration, upper-case GUIDs, absolute
 * paths, comments, missing CHS values and `Start`/`End`, and a missing `<TopGUID>` when a shot
 * has the TOPDELTA GUID; an old file with one shot fewer than images gets ploop's synthesized
 * TOPDELTA shot. Unlike ploop it also refuses duplicate GUIDs and a non-decimal number.
 *
 * @param xmlText the document (at most 1 MiB of UTF-8)
 * @returns the descriptor; CHS values the file omits are filled in as `ploop init` computes them
 * @throws PloopError EFORMAT naming the element, the value and the expectation; ENOTSUP for
 *   chained descriptors (`StorageData/Volume`), encryption and `Max_delta_size`
 * @example
 * const dd = parseDescriptor(await readFile('DiskDescriptor.xml', 'utf8'));
 * for (const delta of descriptorChain(dd)) console.log(delta.file);
 */
export function parseDescriptor(xmlText: string): DiskDescriptor {
  if (typeof xmlText !== 'string') {
    throw new PloopError('EINVAL', `parseDescriptor: expected the document as a string, got ${typeof xmlText}`, { argument: 'xmlText' });
  }
  const root = parseXmlTree(xmlText);
  const rootPath = root.name;

  const params = child(root, 'Disk_Parameters');
  if (!params) failWith('EFORMAT', `<${rootPath}> has no <Disk_Parameters>`, { element: 'Disk_Parameters' });
  const paramsPath = 'Disk_Parameters';
  unsupported(params, 'Max_delta_size', paramsPath, 'a delta size limit');
  unsupported(params, 'Encryption', paramsPath, 'an encrypted disk');
  const diskSizeSectors = optionalUnsigned(params, 'Disk_size', paramsPath, Number.MAX_SAFE_INTEGER);
  if (diskSizeSectors === undefined) failWith('EFORMAT', `<${paramsPath}> has no <Disk_size>`, { element: `${paramsPath}/Disk_size` });
  const chs = initChs(diskSizeSectors, diskSizeSectors);
  const cylinders = optionalUnsigned(params, 'Cylinders', paramsPath, U32_MAX) ?? chs.cylinders;
  const heads = optionalUnsigned(params, 'Heads', paramsPath, U32_MAX) ?? chs.heads;
  const sectors = optionalUnsigned(params, 'Sectors', paramsPath, U32_MAX) ?? chs.sectors;
  const padding = optionalUnsigned(params, 'Padding', paramsPath, U32_MAX) ?? 0;

  const storageData = child(root, 'StorageData');
  if (!storageData) failWith('EFORMAT', `<${rootPath}> has no <StorageData>`, { element: 'StorageData' });
  unsupported(storageData, 'Volume', 'StorageData', 'a chained descriptor');
  const storageIndex = storageData.children.findIndex((c) => c.name === 'Storage');
  if (storageIndex === -1) failWith('EFORMAT', '<StorageData> has no <Storage>', { element: 'StorageData/Storage' });
  const extra = storageData.children[storageIndex + 1];
  if (extra) {
    const count = storageData.children.filter((c) => c.name === 'Storage').length;
    failWith('EFORMAT', extra.name === 'Storage'
      ? `<StorageData> has ${count} <Storage> elements, expected exactly one (split images are not supported)`
      : `<StorageData> has <${extra.name}> after <Storage>, expected nothing there (ploop reads it as a second Storage: "splitted disk is not supported")`,
    { element: `StorageData/${extra.name}` });
  }
  const storage = storageData.children[storageIndex]!;
  const storagePath = 'StorageData/Storage';

  const blocksize = child(storage, 'Blocksize');
  if (!blocksize) failWith('EFORMAT', `<${storagePath}> has no <Blocksize>, expected the cluster size in sectors`, { element: `${storagePath}/Blocksize` });
  const blocksizeSectors = parseUnsigned(valueText(blocksize, `${storagePath}/Blocksize`), `${storagePath}/Blocksize`, U32_MAX);
  const preallocatedValue = optionalUnsigned(storage, 'Preallocated', storagePath, U32_MAX);
  if (preallocatedValue !== undefined && preallocatedValue > 1) {
    failWith('EFORMAT', `<${storagePath}/Preallocated> is ${preallocatedValue}, expected 0 or 1`, { element: `${storagePath}/Preallocated`, value: preallocatedValue });
  }
  const start = optionalUnsigned(storage, 'Start', storagePath, Number.MAX_SAFE_INTEGER);
  if (start !== undefined && start !== 0) {
    failWith('EFORMAT', `<${storagePath}/Start> is ${start}, expected 0`, { element: `${storagePath}/Start`, value: start });
  }
  const end = optionalUnsigned(storage, 'End', storagePath, Number.MAX_SAFE_INTEGER);
  if (end !== undefined && end !== diskSizeSectors) {
    failWith('EFORMAT', `<${storagePath}/End> is ${end}, expected the <Disk_size> ${diskSizeSectors}`, { element: `${storagePath}/End`, value: end });
  }

  const imageElements = listFrom(storage, 'Image', storagePath);
  if (imageElements.length === 0) failWith('EFORMAT', `<${storagePath}> has no <Image>, expected at least one`, { element: `${storagePath}/Image` });
  const images = imageElements.map((element, i): DescriptorImage => {
    const path = `${storagePath}/Image[${i + 1}]`;
    const guid = child(element, 'GUID');
    if (!guid) failWith('EFORMAT', `<${path}> has no <GUID>`, { element: `${path}/GUID` });
    const typeElement = child(element, 'Type');
    let type: DescriptorImageType = 'Compressed';
    if (typeElement) {
      const value = valueText(typeElement, `${path}/Type`);
      if (value !== 'Compressed' && value !== 'Plain') {
        failWith('EFORMAT', `<${path}/Type> is ${show(value)}, expected "Compressed" (ploop image) or "Plain" (raw)`, { element: `${path}/Type`, value });
      }
      type = value;
    }
    const fileElement = child(element, 'File');
    const file = fileElement ? valueText(fileElement, `${path}/File`) : '';
    if (file === '') failWith('EFORMAT', `<${path}> has no <File> (or it is empty), expected the delta's file name`, { element: `${path}/File` });
    return { guid: valueText(guid, `${path}/GUID`), type, file };
  });

  const snapshotsElement = child(root, 'Snapshots');
  if (!snapshotsElement) failWith('EFORMAT', `<${rootPath}> has no <Snapshots>`, { element: 'Snapshots' });
  let topGuid: string | undefined;
  const topElement = child(snapshotsElement, 'TopGUID');
  if (topElement) {
    topGuid = valueText(topElement, 'Snapshots/TopGUID');
    if (topGuid === '') failWith('EFORMAT', '<Snapshots/TopGUID> is empty, expected the top delta\'s GUID', { element: 'Snapshots/TopGUID' });
  }
  const snapshots = listFrom(snapshotsElement, 'Shot', 'Snapshots').map((element, i): DescriptorSnapshot => {
    const path = `Snapshots/Shot[${i + 1}]`;
    const guid = child(element, 'GUID');
    const guidText = guid ? valueText(guid, `${path}/GUID`) : '';
    if (guidText === '') failWith('EFORMAT', `<${path}> has no <GUID> (or it is empty)`, { element: `${path}/GUID` });
    const parent = child(element, 'ParentGUID');
    const parentText = parent ? valueText(parent, `${path}/ParentGUID`) : '';
    if (parentText === '') failWith('EFORMAT', `<${path}> has no <ParentGUID> (or it is empty), expected a GUID or ${NONE_GUID} for the base`, { element: `${path}/ParentGUID` });
    const shot: DescriptorSnapshot = { guid: guidText, parentGuid: parentText };
    if (child(element, 'Temporary')) shot.temporary = true;
    return shot;
  });

  // ploop's validate_disk_descriptor: old descriptors list one shot fewer than images; ploop
  // adds the TOPDELTA shot as a base, and defaults TopGUID to it.
  if (images.length !== snapshots.length) {
    snapshots.push({ guid: TOPDELTA_GUID, parentGuid: NONE_GUID });
    topGuid ??= TOPDELTA_GUID;
  }
  if (topGuid === undefined) {
    if (!snapshots.some((s) => sameGuid(s.guid, TOPDELTA_GUID))) {
      failWith('EFORMAT', `<Snapshots> has no <TopGUID> and no <Shot> with the TOPDELTA GUID ${TOPDELTA_GUID}, expected one of them`, { element: 'Snapshots/TopGUID' });
    }
    topGuid = TOPDELTA_GUID;
  }

  const descriptor: DiskDescriptor = {
    rootElement: root.name,
    diskSizeSectors,
    cylinders,
    heads,
    sectors,
    padding,
    blocksizeSectors,
    preallocated: preallocatedValue === 1,
    images,
    topGuid,
    snapshots,
  };
  checkDescriptor(descriptor, 'EFORMAT');
  return descriptor;
}

// ---------------------------------------------------------------------------------------------
// Semantic validation, shared by parse (EFORMAT) and by the writers (EINVAL)

const XML_NAME = /^[A-Za-z_:][A-Za-z0-9_.:-]*$/;

function checkUnsigned(code: PloopErrorCode, value: unknown, element: string, max: number): void {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0 || value > max) {
    failWith(code, `<${element}> is ${show(value)}, expected an integer from 0 to ${max}`, { element, value });
  }
}

function checkDescriptor(d: DiskDescriptor, code: PloopErrorCode): void {
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

  const imageIndex = new Map<string, number>();
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

  const shotIndex = new Map<string, number>();
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

// ---------------------------------------------------------------------------------------------
// What `ploop init` writes, and the edits of snapshot / snapshot-merge / snapshot-delete

/**
 * CHS as `ploop init` writes it: Heads 16, Cylinders = size / (16·32), and Sectors recomputed at
 * store time as Disk_size / (Cylinders·Heads) in C unsigned 32-bit arithmetic.
 */
function initChs(diskSizeSectors: number, chsSizeSectors: number): { cylinders: number; heads: number; sectors: number } {
  const cylinders = Math.floor(chsSizeSectors / (HEADS_NUMBER * SEC_IN_CYL)) % 2 ** 32;
  const trackCount = (cylinders * HEADS_NUMBER) % 2 ** 32;
  // ploop would divide by zero here (disks under 256 KiB); keep the nominal value instead.
  const sectors = trackCount === 0 ? SEC_IN_CYL : Math.floor(diskSizeSectors / trackCount);
  return { cylinders, heads: HEADS_NUMBER, sectors: Math.min(sectors, U32_MAX) };
}

/** Options of `newDescriptor`. */
export interface NewDescriptorOptions {
  /** Virtual size in sectors; Compressed images round it up to a whole cluster as `ploop init` does. */
  sizeSectors: number;
  /** Cluster size in sectors (default 2048 = 1 MiB). */
  blocksizeSectors?: number;
  /** Base image file name (default `root.hds`). */
  file?: string;
  /** Default `Compressed`; `Plain` is `ploop init -f raw`. */
  type?: DescriptorImageType;
  /** `ploop init -f preallocated`. */
  preallocated?: boolean;
  /** Default `Virtuozzo_disk_image` (ploop 9); ploop 1.x writes `Parallels_disk_image`. */
  rootElement?: string;
  /**
   * Size the CHS values are computed from, when it differs from `sizeSectors`: `ploop init -v 1`
   * clamps Disk_size to 2^31 sectors but keeps the Cylinders of the requested size.
   */
  chsSizeSectors?: number;
}

/**
 * The descriptor `ploop init` writes: one image with the TOPDELTA GUID whose parent is NONE.
 * @example
 * serializeDescriptor(newDescriptor({ sizeSectors: 131072 })); // the 784-byte `ploop init -s 64M` file
 */
export function newDescriptor(options: NewDescriptorOptions): DiskDescriptor {
  const opts: Partial<NewDescriptorOptions> = options ?? {};
  const { sizeSectors, blocksizeSectors = 2048, file = 'root.hds', type = 'Compressed', preallocated = false, rootElement = DEFAULT_ROOT_ELEMENT } = opts;
  if (sizeSectors === undefined || !Number.isSafeInteger(sizeSectors) || sizeSectors <= 0) {
    throw new PloopError('EINVAL', `newDescriptor: sizeSectors is ${show(sizeSectors)}, expected a positive whole number of sectors`, { option: 'sizeSectors', value: sizeSectors });
  }
  const chsSizeSectors = opts.chsSizeSectors ?? sizeSectors;
  if (!Number.isSafeInteger(chsSizeSectors) || chsSizeSectors <= 0) {
    throw new PloopError('EINVAL', `newDescriptor: chsSizeSectors is ${show(chsSizeSectors)}, expected a positive whole number of sectors`, { option: 'chsSizeSectors', value: chsSizeSectors });
  }
  const diskSizeSectors = type === 'Compressed' && Number.isInteger(blocksizeSectors) && blocksizeSectors > 0
    ? Math.ceil(sizeSectors / blocksizeSectors) * blocksizeSectors
    : sizeSectors;
  const descriptor: DiskDescriptor = {
    rootElement,
    diskSizeSectors,
    ...initChs(diskSizeSectors, chsSizeSectors === sizeSectors ? diskSizeSectors : chsSizeSectors),
    padding: 0,
    blocksizeSectors,
    preallocated,
    images: [{ guid: TOPDELTA_GUID, type, file }],
    topGuid: TOPDELTA_GUID,
    snapshots: [{ guid: TOPDELTA_GUID, parentGuid: NONE_GUID }],
  };
  checkDescriptor(descriptor, 'EINVAL');
  return descriptor;
}

function cloneDescriptor(d: DiskDescriptor): DiskDescriptor {
  return {
    ...d,
    images: d.images.map((image) => ({ ...image })),
    snapshots: d.snapshots.map((shot) => ({ ...shot })),
  };
}

/** ploop's `ploop_di_change_guid`: rename a GUID in images, shots, parent links and TopGUID. */
function changeGuid(d: DiskDescriptor, from: string, to: string): void {
  for (const image of d.images) if (sameGuid(image.guid, from)) image.guid = to;
  for (const shot of d.snapshots) {
    if (sameGuid(shot.guid, from)) shot.guid = to;
    if (sameGuid(shot.parentGuid, from)) shot.parentGuid = to;
  }
  if (sameGuid(d.topGuid, from)) d.topGuid = to;
}

function requireTopDeltaFormat(d: DiskDescriptor, operation: string): void {
  if (!sameGuid(d.topGuid, TOPDELTA_GUID)) {
    throw new PloopError('EINVAL', `${operation}: TopGUID is ${d.topGuid}, not ${TOPDELTA_GUID}; ploop refuses this ("Snapshot is in old format") until the descriptor is stored again`,
      { value: d.topGuid });
  }
}

function findShot(d: DiskDescriptor, guid: string, operation: string): DescriptorSnapshot {
  const shot = d.snapshots.find((s) => sameGuid(s.guid, guid));
  if (!shot) throw new PloopError('EINVAL', `${operation}: no snapshot has the GUID ${show(guid)}`, { value: guid });
  return shot;
}

function findImage(d: DiskDescriptor, guid: string, operation: string): DescriptorImage {
  const image = d.images.find((i) => sameGuid(i.guid, guid));
  if (!image) throw new PloopError('EINVAL', `${operation}: no image has the GUID ${show(guid)}`, { value: guid });
  return image;
}

function childrenOf(d: DiskDescriptor, guid: string): DescriptorSnapshot[] {
  return d.snapshots.filter((s) => sameGuid(s.parentGuid, guid));
}

/** Options of `addSnapshot`. */
export interface AddSnapshotOptions {
  /** File of the new top delta; default `<first image's file>.<random GUID>`, as ploop names it. */
  newFile?: string;
  /** GUID the current top takes; default a random one. */
  snapshotGuid?: string;
  /** Mark the new snapshot `<Temporary/>` (ploop's temporary snapshots). */
  temporary?: boolean;
}

/**
 * The descriptor after an offline `ploop snapshot` (do_create_snapshot): the current top image
 * and its shot take `snapshotGuid`, and a new Compressed image with the TOPDELTA GUID, file
 * `newFile` and parent `snapshotGuid` is appended. The caller creates the empty delta file (same
 * version, cluster size and size as its parent) before storing this descriptor.
 * @throws PloopError EINVAL for an old-format descriptor, a GUID or file already in use, or a
 *   chain longer than ploop allows
 * @example
 * const next = addSnapshot(dd, { newFile: `root.hds.${randomGuid()}` });
 */
export function addSnapshot(d: DiskDescriptor, options: AddSnapshotOptions = {}): DiskDescriptor {
  checkDescriptor(d, 'EINVAL');
  const operation = 'addSnapshot';
  requireTopDeltaFormat(d, operation);
  const snapshotGuid = options.snapshotGuid ?? randomGuid();
  if (!isValidGuid(snapshotGuid)) {
    throw new PloopError('EINVAL', `${operation}: snapshotGuid is ${show(snapshotGuid)}, expected a GUID in braces`, { option: 'snapshotGuid', value: snapshotGuid });
  }
  if (d.snapshots.some((s) => sameGuid(s.guid, snapshotGuid)) || d.images.some((i) => sameGuid(i.guid, snapshotGuid))) {
    throw new PloopError('EINVAL', `${operation}: the snapshot ${snapshotGuid} already exists`, { option: 'snapshotGuid', value: snapshotGuid });
  }
  const newFile = options.newFile ?? `${d.images[0]!.file}.${randomGuid()}`;
  if (typeof newFile !== 'string' || newFile === '') {
    throw new PloopError('EINVAL', `${operation}: newFile is ${show(newFile)}, expected a file name`, { option: 'newFile', value: newFile });
  }
  if (d.images.some((i) => i.file === newFile)) {
    throw new PloopError('EINVAL', `${operation}: newFile ${show(newFile)} is already the file of an image`, { option: 'newFile', value: newFile });
  }
  const chainLength = walkChain(d, 'EINVAL').length;
  if (chainLength > MAX_CHAIN_BEFORE_SNAPSHOT) {
    throw new PloopError('EINVAL', `${operation}: the maximum number of snapshots (${chainLength - 1}) has been reached`, { value: chainLength });
  }
  const next = cloneDescriptor(d);
  changeGuid(next, TOPDELTA_GUID, snapshotGuid);
  if (options.temporary) findShot(next, snapshotGuid, operation).temporary = true;
  next.images.push({ guid: TOPDELTA_GUID, type: 'Compressed', file: newFile });
  next.snapshots.push({ guid: TOPDELTA_GUID, parentGuid: snapshotGuid });
  next.topGuid = TOPDELTA_GUID;
  checkDescriptor(next, 'EINVAL');
  return next;
}

/**
 * The descriptor after merging a delta into its parent offline (`ploop_di_merge_image`, used by
 * `snapshot-merge` and `snapshot-delete`): the parent file survives and its image and shot take
 * the child's GUID; the child's entries go and its file is to be deleted.
 * @param childGuid the delta whose clusters are copied down into its parent
 * @throws PloopError EINVAL if the child is unknown, is the base, or its parent has other children
 * @example
 * const { descriptor, removedFile } = mergeIntoParent(dd, dd.topGuid);
 */
export function mergeIntoParent(d: DiskDescriptor, childGuid: string): DescriptorEdit {
  checkDescriptor(d, 'EINVAL');
  const operation = 'mergeIntoParent';
  const shot = findShot(d, childGuid, operation);
  const image = findImage(d, childGuid, operation);
  if (sameGuid(shot.parentGuid, NONE_GUID)) {
    throw new PloopError('EINVAL', `${operation}: ${shot.guid} is the base image, it has no parent to merge into`, { value: childGuid });
  }
  const siblings = childrenOf(d, shot.parentGuid).length;
  if (siblings > 1) {
    throw new PloopError('EINVAL', `${operation}: the parent ${shot.parentGuid} has ${siblings} children, expected one`, { value: childGuid });
  }
  const next = cloneDescriptor(d);
  const parentGuid = shot.parentGuid;
  next.snapshots = next.snapshots.filter((s) => !sameGuid(s.guid, shot.guid));
  next.images = next.images.filter((i) => !sameGuid(i.guid, image.guid));
  for (const s of next.snapshots) if (sameGuid(s.guid, parentGuid)) s.guid = shot.guid;
  for (const i of next.images) if (sameGuid(i.guid, parentGuid)) i.guid = shot.guid;
  checkDescriptor(next, 'EINVAL');
  return { descriptor: next, removedFile: image.file };
}

/**
 * `ploop snapshot-merge DD` offline: the top delta merged into its parent, which becomes the top
 * with the TOPDELTA GUID.
 * @example
 * const { descriptor, removedFile } = mergeTopIntoParent(dd);
 */
export function mergeTopIntoParent(d: DiskDescriptor): DescriptorEdit {
  return mergeIntoParent(d, d?.topGuid);
}

/**
 * `ploop snapshot-delete -u GUID DD` offline (do_delete_snapshot): a leaf snapshot is dropped (its
 * data is lost; if it was the top, its parent becomes the top with the TOPDELTA GUID); a snapshot
 * with one child has that child merged into it; one with several children is only marked
 * `<Temporary/>`.
 * @throws PloopError EINVAL for the base image, an unknown GUID, or dropping a top whose parent is temporary
 * @example
 * const { descriptor, removedFile } = deleteSnapshot(dd, '{48378aa6-1fb4-4a91-9a82-06cd4c20041c}');
 */
export function deleteSnapshot(d: DiskDescriptor, guid: string): DescriptorEdit {
  checkDescriptor(d, 'EINVAL');
  const operation = 'deleteSnapshot';
  requireTopDeltaFormat(d, operation);
  const shot = findShot(d, guid, operation);
  const children = childrenOf(d, shot.guid);
  if (children.length === 1) return mergeIntoParent(d, children[0]!.guid);
  if (children.length > 1) {
    const next = cloneDescriptor(d);
    findShot(next, guid, operation).temporary = true;
    return { descriptor: next, removedFile: null };
  }
  if (sameGuid(shot.parentGuid, NONE_GUID)) {
    throw new PloopError('EINVAL', `${operation}: ${shot.guid} is the base image, it cannot be deleted`, { value: guid });
  }
  const isTop = sameGuid(shot.guid, d.topGuid);
  if (isTop && findShot(d, shot.parentGuid, operation).temporary) {
    throw new PloopError('EINVAL', `${operation}: cannot delete the top delta, its parent ${shot.parentGuid} is temporary`, { value: guid });
  }
  const image = findImage(d, shot.guid, operation);
  findImage(d, shot.parentGuid, operation);
  const next = cloneDescriptor(d);
  next.snapshots = next.snapshots.filter((s) => !sameGuid(s.guid, shot.guid));
  next.images = next.images.filter((i) => !sameGuid(i.guid, shot.guid));
  if (isTop) changeGuid(next, shot.parentGuid, TOPDELTA_GUID);
  checkDescriptor(next, 'EINVAL');
  return { descriptor: next, removedFile: image.file };
}

/**
 * Discard the top delta (its data is lost): `deleteSnapshot(d, d.topGuid)`. The parent becomes
 * the top and takes the TOPDELTA GUID.
 * @example
 * const { descriptor, removedFile } = removeTopDelta(dd);
 */
export function removeTopDelta(d: DiskDescriptor): DescriptorEdit {
  checkDescriptor(d, 'EINVAL');
  if (childrenOf(d, d.topGuid).length > 0) {
    throw new PloopError('EINVAL', `removeTopDelta: the top ${d.topGuid} has child snapshots`, { value: d.topGuid });
  }
  return deleteSnapshot(d, d.topGuid);
}
