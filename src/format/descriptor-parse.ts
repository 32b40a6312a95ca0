// SPDX-License-Identifier: MIT
// Reading a DiskDescriptor.xml (docs/format.md, 'How the ploop tools parse it'): untrusted text
// to an element tree, then to the DiskDescriptor model with the ploop tools' own parse rules.
//
// The XML is read by fast-xml-parser (pure JS, browser and Node). The document is untrusted: it is
// size-capped, must contain only XML 1.0 characters, may not carry a DOCTYPE or any entity
// declaration, and only the five predefined entities and character references are decoded.

import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { PloopError } from '../errors.js';
import {
  TOPDELTA_GUID, NONE_GUID, U32_MAX, PARSE_PREFIX, failWith, show, isXmlChar, firstNonXmlChar, sameGuid, initChs, checkDescriptor,
  type DiskDescriptor, type DescriptorImage, type DescriptorImageType, type DescriptorSnapshot,
} from './descriptor.js';

/** Largest DiskDescriptor.xml we read, in UTF-8 bytes. A real one is about 1 KiB per image. */
export const MAX_DESCRIPTOR_BYTES = 1 << 20;

// ---------------------------------------------------------------------------------------------
// Untrusted XML → element tree

interface XmlElement {
  readonly name: string;
  readonly children: readonly XmlElement[];
  /** The element's own text nodes (and CDATA), concatenated. */
  readonly text: string;
}

const XML_NAMED_ENTITIES: Readonly<Record<string, string>> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

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

type DiskParameters = Pick<DiskDescriptor, 'diskSizeSectors' | 'cylinders' | 'heads' | 'sectors' | 'padding'>;

/** `<Disk_Parameters>`: the size is required; CHS values the file omits are computed as `ploop init` does. */
function parseDiskParameters(root: XmlElement): DiskParameters {
  const params = child(root, 'Disk_Parameters');
  if (!params) failWith('EFORMAT', `<${root.name}> has no <Disk_Parameters>`, { element: 'Disk_Parameters' });
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
  return { diskSizeSectors, cylinders, heads, sectors, padding };
}

/** The one `<Storage>` of `<StorageData>`: ploop reads any element after it as a second Storage. */
function findStorage(root: XmlElement): XmlElement {
  const storageData = child(root, 'StorageData');
  if (!storageData) failWith('EFORMAT', `<${root.name}> has no <StorageData>`, { element: 'StorageData' });
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
  return storageData.children[storageIndex]!;
}

/** `<Storage>`'s values: the cluster size, preallocation, and a Start and End that span the disk. */
function parseStorage(storage: XmlElement, diskSizeSectors: number): Pick<DiskDescriptor, 'blocksizeSectors' | 'preallocated'> {
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
  return { blocksizeSectors, preallocated: preallocatedValue === 1 };
}

/** One `<Image>`: a missing `<Type>` means Compressed, as in ploop. */
function parseImage(element: XmlElement, index: number): DescriptorImage {
  const path = `StorageData/Storage/Image[${index + 1}]`;
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
}

function parseImages(storage: XmlElement): DescriptorImage[] {
  const imageElements = listFrom(storage, 'Image', 'StorageData/Storage');
  if (imageElements.length === 0) failWith('EFORMAT', '<StorageData/Storage> has no <Image>, expected at least one', { element: 'StorageData/Storage/Image' });
  return imageElements.map(parseImage);
}

/** One `<Shot>`: a `<Temporary/>` child marks it temporary, whatever it contains. */
function parseShot(element: XmlElement, index: number): DescriptorSnapshot {
  const path = `Snapshots/Shot[${index + 1}]`;
  const guid = child(element, 'GUID');
  const guidText = guid ? valueText(guid, `${path}/GUID`) : '';
  if (guidText === '') failWith('EFORMAT', `<${path}> has no <GUID> (or it is empty)`, { element: `${path}/GUID` });
  const parent = child(element, 'ParentGUID');
  const parentText = parent ? valueText(parent, `${path}/ParentGUID`) : '';
  if (parentText === '') failWith('EFORMAT', `<${path}> has no <ParentGUID> (or it is empty), expected a GUID or ${NONE_GUID} for the base`, { element: `${path}/ParentGUID` });
  const shot: DescriptorSnapshot = { guid: guidText, parentGuid: parentText };
  if (child(element, 'Temporary')) shot.temporary = true;
  return shot;
}

/** `<Snapshots>`: the shots and `<TopGUID>`, which may be absent (see `resolveTop`). */
function parseSnapshots(root: XmlElement): { topGuid: string | undefined; snapshots: DescriptorSnapshot[] } {
  const snapshotsElement = child(root, 'Snapshots');
  if (!snapshotsElement) failWith('EFORMAT', `<${root.name}> has no <Snapshots>`, { element: 'Snapshots' });
  let topGuid: string | undefined;
  const topElement = child(snapshotsElement, 'TopGUID');
  if (topElement) {
    topGuid = valueText(topElement, 'Snapshots/TopGUID');
    if (topGuid === '') failWith('EFORMAT', '<Snapshots/TopGUID> is empty, expected the top delta\'s GUID', { element: 'Snapshots/TopGUID' });
  }
  const snapshots = listFrom(snapshotsElement, 'Shot', 'Snapshots').map(parseShot);
  return { topGuid, snapshots };
}

/**
 * ploop's validate_disk_descriptor: old descriptors list one shot fewer than images; ploop adds
 * the TOPDELTA shot as a base (to `snapshots`), and defaults TopGUID to it. Returns the TopGUID.
 */
function resolveTop(images: readonly DescriptorImage[], snapshots: DescriptorSnapshot[], topGuid: string | undefined): string {
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
  return topGuid;
}

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
  // The order of the steps decides which fault of several a document is reported by: keep it.
  const parameters = parseDiskParameters(root);
  const storage = findStorage(root);
  const storageValues = parseStorage(storage, parameters.diskSizeSectors);
  const images = parseImages(storage);
  const { topGuid, snapshots } = parseSnapshots(root);
  const descriptor: DiskDescriptor = {
    rootElement: root.name,
    ...parameters,
    ...storageValues,
    images,
    topGuid: resolveTop(images, snapshots, topGuid),
    snapshots,
  };
  checkDescriptor(descriptor, 'EFORMAT');
  return descriptor;
}
