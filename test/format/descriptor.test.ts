// DiskDescriptor.xml: the exact bytes the ploop tools write, the variants they accept and refuse
// (docs/format.md, 'DiskDescriptor.xml'), hostile XML, the delta chain, the snapshot / merge /
// delete edits, and Debian's ploop 1.15 reading and editing our output.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, access } from 'node:fs/promises';
import { join } from 'node:path';
import {
  serializeDescriptor, validateDescriptor, descriptorChain, randomGuid, isValidGuid, TOPDELTA_GUID, NONE_GUID, type DiskDescriptor,
} from '../../src/format/descriptor.ts';
import { parseDescriptor, MAX_DESCRIPTOR_BYTES } from '../../src/format/descriptor-parse.ts';
import {
  newDescriptor, addSnapshot, mergeIntoParent, mergeTopIntoParent, deleteSnapshot, removeTopDelta, MAX_CHAIN_BEFORE_SNAPSHOT,
} from '../../src/format/descriptor-edits.ts';
import { PloopError } from '../../src/errors.ts';
import { run, runOk, qemuCreate } from '../helpers/qemu.ts';
import { withTempDir } from '../helpers/tmp.ts';
import { throwsWith } from '../helpers/errors.ts';

const SNAP = '{48378aa6-1fb4-4a91-9a82-06cd4c20041c}';
const DELTA_FILE = 'root.hds.{7b872067-a7a4-4bbf-8a35-eb735ea005ad}';
const SNAP2 = '{11111111-2222-4333-8444-555555555555}';

/** `ploop init -s 64M -t none root.hds`, verbatim as ploop 9 wrote it (784 bytes). */
const INIT_DD = `<?xml version="1.0"?>
<Virtuozzo_disk_image>
  <Disk_Parameters>
    <Disk_size>131072</Disk_size>
    <Cylinders>256</Cylinders>
    <Heads>16</Heads>
    <Sectors>32</Sectors>
    <Padding>0</Padding>
  </Disk_Parameters>
  <StorageData>
    <Storage>
      <Start>0</Start>
      <End>131072</End>
      <Blocksize>2048</Blocksize>
      <Image>
        <GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID>
        <Type>Compressed</Type>
        <File>root.hds</File>
      </Image>
    </Storage>
  </StorageData>
  <Snapshots>
    <TopGUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</TopGUID>
    <Shot>
      <GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID>
      <ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID>
    </Shot>
  </Snapshots>
</Virtuozzo_disk_image>
`;

const HEAD = INIT_DD.slice(0, INIT_DD.indexOf('  <StorageData>'));

/** The same folder after one offline `ploop snapshot` by ploop 9 (head and tail as in INIT_DD). */
const AFTER_SNAPSHOT_DD = `${HEAD}  <StorageData>
    <Storage>
      <Start>0</Start>
      <End>131072</End>
      <Blocksize>2048</Blocksize>
      <Image>
        <GUID>{48378aa6-1fb4-4a91-9a82-06cd4c20041c}</GUID>
        <Type>Compressed</Type>
        <File>root.hds</File>
      </Image>
      <Image>
        <GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID>
        <Type>Compressed</Type>
        <File>root.hds.{7b872067-a7a4-4bbf-8a35-eb735ea005ad}</File>
      </Image>
    </Storage>
  </StorageData>
  <Snapshots>
    <TopGUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</TopGUID>
    <Shot>
      <GUID>{48378aa6-1fb4-4a91-9a82-06cd4c20041c}</GUID>
      <ParentGUID>{00000000-0000-0000-0000-000000000000}</ParentGUID>
    </Shot>
    <Shot>
      <GUID>{5fbaabe3-6958-40ff-92a7-860e329aab41}</GUID>
      <ParentGUID>{48378aa6-1fb4-4a91-9a82-06cd4c20041c}</ParentGUID>
    </Shot>
  </Snapshots>
</Virtuozzo_disk_image>
`;

const INIT_MODEL: DiskDescriptor = {
  rootElement: 'Virtuozzo_disk_image',
  diskSizeSectors: 131072,
  cylinders: 256,
  heads: 16,
  sectors: 32,
  padding: 0,
  blocksizeSectors: 2048,
  preallocated: false,
  images: [{ guid: TOPDELTA_GUID, type: 'Compressed', file: 'root.hds' }],
  topGuid: TOPDELTA_GUID,
  snapshots: [{ guid: TOPDELTA_GUID, parentGuid: NONE_GUID }],
};

const afterSnapshot = () => addSnapshot(newDescriptor({ sizeSectors: 131072 }), { newFile: DELTA_FILE, snapshotGuid: SNAP });
/** base root.hds (SNAP) <- root.hds.1 (SNAP2) <- root.hds.2 (top). */
const threeLevels = () => addSnapshot(afterSnapshot(), { newFile: 'root.hds.2', snapshotGuid: SNAP2 });

/** Replace exactly one occurrence, so that a typo in a variant fails loudly. */
function edit(text: string, from: string, to: string): string {
  const at = text.indexOf(from);
  assert.ok(at !== -1 && text.indexOf(from, at + 1) === -1, `expected exactly one ${JSON.stringify(from)}`);
  return text.slice(0, at) + to + text.slice(at + from.length);
}

describe('the bytes ploop writes', () => {
  test('newDescriptor for 64 MiB serializes to the 784-byte `ploop init -s 64M` document exactly', () => {
    assert.equal(Buffer.byteLength(INIT_DD), 784);
    assert.deepEqual(newDescriptor({ sizeSectors: 131072 }), INIT_MODEL);
    assert.equal(serializeDescriptor(newDescriptor({ sizeSectors: 131072 })), INIT_DD);
  });

  test('the init document parses to the init model and serializes back byte for byte', () => {
    assert.deepEqual(parseDescriptor(INIT_DD), INIT_MODEL);
    assert.equal(serializeDescriptor(parseDescriptor(INIT_DD)), INIT_DD);
  });

  test('addSnapshot reproduces the after-snapshot document: old top relabelled, TOPDELTA image appended', () => {
    assert.equal(serializeDescriptor(afterSnapshot()), AFTER_SNAPSHOT_DD);
    assert.equal(serializeDescriptor(parseDescriptor(AFTER_SNAPSHOT_DD)), AFTER_SNAPSHOT_DD);
    assert.deepEqual(parseDescriptor(AFTER_SNAPSHOT_DD), afterSnapshot());
  });

  test('a second snapshot appends again: images and shots stay in creation order, base first', () => {
    const d = threeLevels();
    assert.deepEqual(d.images.map((i) => [i.guid, i.file]), [[SNAP, 'root.hds'], [SNAP2, DELTA_FILE], [TOPDELTA_GUID, 'root.hds.2']]);
    assert.deepEqual(d.snapshots, [
      { guid: SNAP, parentGuid: NONE_GUID },
      { guid: SNAP2, parentGuid: SNAP },
      { guid: TOPDELTA_GUID, parentGuid: SNAP2 },
    ]);
    assert.equal(d.topGuid, TOPDELTA_GUID);
    assert.equal(serializeDescriptor(parseDescriptor(serializeDescriptor(d))), serializeDescriptor(d));
  });

  test('-f preallocated puts <Preallocated>1</Preallocated> right after <Blocksize>, and -f raw writes Type Plain', () => {
    const prealloc = serializeDescriptor(newDescriptor({ sizeSectors: 131072, preallocated: true }));
    assert.equal(prealloc, edit(INIT_DD, '<Blocksize>2048</Blocksize>\n', '<Blocksize>2048</Blocksize>\n      <Preallocated>1</Preallocated>\n'));
    assert.equal(parseDescriptor(prealloc).preallocated, true);
    const raw = serializeDescriptor(newDescriptor({ sizeSectors: 131072, type: 'Plain' }));
    assert.equal(raw, edit(INIT_DD, '<Type>Compressed</Type>', '<Type>Plain</Type>'));
    assert.equal(parseDescriptor(raw).images[0]!.type, 'Plain');
  });

  test('-b 64 writes Blocksize 64, and -s 65537K rounds Disk_size up to a whole cluster (133120, 260 cylinders)', () => {
    assert.equal(newDescriptor({ sizeSectors: 131072, blocksizeSectors: 64 }).blocksizeSectors, 64);
    const d = newDescriptor({ sizeSectors: 65537 * 2 });
    assert.deepEqual([d.diskSizeSectors, d.cylinders, d.heads, d.sectors], [133120, 260, 16, 32]);
    assert.match(serializeDescriptor(d), /<Disk_size>133120<\/Disk_size>[\s\S]*<End>133120<\/End>/);
  });

  test('-s 3T -v 1 clamps Disk_size to 2^31 sectors but keeps the CHS of 3T: Cylinders 12582912, Sectors 10', () => {
    const d = newDescriptor({ sizeSectors: 2 ** 31, chsSizeSectors: 6442450944 });
    assert.deepEqual([d.diskSizeSectors, d.cylinders, d.heads, d.sectors], [2147483648, 12582912, 16, 10]);
    const v2 = newDescriptor({ sizeSectors: 6442450944 });
    assert.deepEqual([v2.cylinders, v2.sectors], [12582912, 32]);
  });

  test('a temporary shot is written as <Temporary/> after ParentGUID and reads back as temporary', () => {
    const d = addSnapshot(afterSnapshot(), { newFile: 'root.hds.2', snapshotGuid: SNAP2, temporary: true });
    const text = serializeDescriptor(d);
    assert.match(text, new RegExp(`<GUID>\\${SNAP2.slice(0, -1)}\\}</GUID>\\n      <ParentGUID>\\${SNAP.slice(0, -1)}\\}</ParentGUID>\\n      <Temporary/>\\n    </Shot>`));
    assert.deepEqual(parseDescriptor(text), d);
    assert.equal(parseDescriptor(text).snapshots[1]!.temporary, true);
  });

  test('file names are escaped as libxml2 saves them (&amp; &lt; &gt;, non-ASCII as &#xE9;) and read back unchanged', () => {
    const file = 'dir/a&b<c>"q\'é✓.hds';
    const d = { ...newDescriptor({ sizeSectors: 131072 }), images: [{ guid: TOPDELTA_GUID, type: 'Compressed' as const, file }] };
    const text = serializeDescriptor(d);
    assert.ok(text.includes('<File>dir/a&amp;b&lt;c&gt;"q\'&#xE9;&#x2713;.hds</File>'), text);
    assert.equal(parseDescriptor(text).images[0]!.file, file);
  });
});

describe('variants ploop accepts (docs/format.md, How the ploop tools parse it)', () => {
  test('no XML declaration, comments, CRLF line ends and a byte order mark', () => {
    const variant = '\ufeff' + INIT_DD.replace('<?xml version="1.0"?>\n', '<!-- made by hand -->\n')
      .replace('<Heads>16</Heads>', '<!-- c --><Heads>16</Heads>').replaceAll('\n', '\r\n');
    assert.deepEqual(parseDescriptor(variant), INIT_MODEL);
  });

  test('any root element name (QEMU\'s Parallels_disk_image Version="1.0") is kept and written back without attributes', () => {
    const variant = INIT_DD.replace('<Virtuozzo_disk_image>', '<Parallels_disk_image Version="1.0">').replace('</Virtuozzo_disk_image>', '</Parallels_disk_image>');
    const d = parseDescriptor(variant);
    assert.equal(d.rootElement, 'Parallels_disk_image');
    assert.equal(serializeDescriptor(d), INIT_DD.replaceAll('Virtuozzo_disk_image', 'Parallels_disk_image'));
  });

  test('upper-case GUIDs match lower-case references and keep their spelling', () => {
    const variant = AFTER_SNAPSHOT_DD.replaceAll(SNAP, SNAP.toUpperCase()).replace(`<TopGUID>${TOPDELTA_GUID}`, `<TopGUID>${TOPDELTA_GUID.toUpperCase()}`);
    const d = parseDescriptor(variant);
    assert.equal(d.topGuid, TOPDELTA_GUID.toUpperCase());
    assert.deepEqual(descriptorChain(d).map((e) => e.file), ['root.hds', DELTA_FILE]);
    assert.equal(serializeDescriptor(d), variant);
  });

  test('an absolute <File> path is taken as written', () => {
    const d = parseDescriptor(INIT_DD.replace('<File>root.hds</File>', '<File>/vz/private/101/root.hdd/root.hds</File>'));
    assert.equal(descriptorChain(d)[0]!.file, '/vz/private/101/root.hdd/root.hds');
  });

  test('Cylinders, Heads, Sectors, Padding, Start and End may be missing; CHS is then computed as init does', () => {
    let variant = INIT_DD;
    for (const line of ['<Cylinders>256</Cylinders>', '<Heads>16</Heads>', '<Sectors>32</Sectors>', '<Padding>0</Padding>', '<Start>0</Start>', '<End>131072</End>']) {
      variant = edit(variant, line, '');
    }
    assert.deepEqual(parseDescriptor(variant), INIT_MODEL);
  });

  test('a missing <TopGUID> defaults to the TOPDELTA GUID when a shot has it', () => {
    const d = parseDescriptor(edit(AFTER_SNAPSHOT_DD, `<TopGUID>${TOPDELTA_GUID}</TopGUID>`, ''));
    assert.equal(d.topGuid, TOPDELTA_GUID);
    assert.equal(serializeDescriptor(d), AFTER_SNAPSHOT_DD);
  });

  test('a non-constant TopGUID is taken as is (an old-format descriptor)', () => {
    const old = AFTER_SNAPSHOT_DD.replaceAll(TOPDELTA_GUID, SNAP2);
    const d = parseDescriptor(old);
    assert.equal(d.topGuid, SNAP2);
    assert.deepEqual(descriptorChain(d).map((e) => e.guid), [SNAP, SNAP2]);
  });

  test('an old descriptor with one shot fewer than images gets ploop\'s synthesized TOPDELTA base shot', () => {
    const withoutShot = INIT_DD.replace(/<TopGUID>[^]*<\/Shot>\n/, '');
    const d = parseDescriptor(withoutShot);
    assert.deepEqual(d.snapshots, [{ guid: TOPDELTA_GUID, parentGuid: NONE_GUID }]);
    assert.equal(d.topGuid, TOPDELTA_GUID);
    assert.equal(serializeDescriptor(d), INIT_DD);
  });

  test('predefined entities, character references and CDATA in <File> are decoded', () => {
    const d = parseDescriptor(INIT_DD.replace('<File>root.hds</File>', '<File>a&amp;b&lt;&#233;&#x41;<![CDATA[<raw>]]>.hds</File>'));
    assert.equal(d.images[0]!.file, 'a&b<éA<raw>.hds');
  });

  test('unknown elements are ignored, as ploop ignores them', () => {
    const d = parseDescriptor(INIT_DD.replace('<Padding>0</Padding>', '<Padding>0</Padding><Extra><polluted>1</polluted></Extra><More/>'));
    assert.deepEqual(d, INIT_MODEL);
  });

  test('an element named __proto__ is refused by the XML library and pollutes nothing', () => {
    throwsWith(() => parseDescriptor(INIT_DD.replace('<Padding>0</Padding>', '<Padding>0</Padding><__proto__><polluted>1</polluted></__proto__>')),
      'EFORMAT', /malformed XML: .*"__proto__"/);
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
  });
});

describe('documents ploop refuses are refused with a specific EFORMAT', () => {
  const cases: Array<[string, string, RegExp[]]> = [
    ['a GUID without braces', INIT_DD.replace(`<GUID>${TOPDELTA_GUID}</GUID>\n        <Type>`, '<GUID>5fbaabe3-6958-40ff-92a7-860e329aab41</GUID>\n        <Type>'),
      [/<StorageData\/Storage\/Image\[1\]\/GUID> is "5fbaabe3-6958-40ff-92a7-860e329aab41", expected a GUID in braces/]],
    ['a GUID with a non-hex digit', INIT_DD.replace('<ParentGUID>{00000000-0000-0000-0000-000000000000}', '<ParentGUID>{0000000g-0000-0000-0000-000000000000}'),
      [/<Snapshots\/Shot\[1\]\/ParentGUID> is "\{0000000g-.*expected a GUID in braces/]],
    ['Blocksize 1000', INIT_DD.replace('<Blocksize>2048', '<Blocksize>1000'), [/<StorageData\/Storage\/Blocksize> is 1000, expected a power of two from 64 to 131072 sectors/]],
    ['Blocksize 32 (below the 32 KiB minimum)', INIT_DD.replace('<Blocksize>2048', '<Blocksize>32'), [/Blocksize> is 32, expected a power of two from 64/]],
    ['Blocksize 262144 (above the 64 MiB maximum)', INIT_DD.replace('<Blocksize>2048', '<Blocksize>262144'), [/Blocksize> is 262144, expected .* to 131072/]],
    ['no Blocksize', edit(INIT_DD, '<Blocksize>2048</Blocksize>', ''), [/<StorageData\/Storage> has no <Blocksize>/]],
    ['no <Snapshots>', INIT_DD.replace(/ {2}<Snapshots>[^]*<\/Snapshots>\n/, ''), [/<Virtuozzo_disk_image> has no <Snapshots>/]],
    ['no <Disk_Parameters>', INIT_DD.replace(/ {2}<Disk_Parameters>[^]*<\/Disk_Parameters>\n/, ''), [/has no <Disk_Parameters>/]],
    ['no <Disk_size>', edit(INIT_DD, '<Disk_size>131072</Disk_size>', ''), [/<Disk_Parameters> has no <Disk_size>/]],
    ['no <StorageData>', INIT_DD.replace(/ {2}<StorageData>[^]*<\/StorageData>\n/, ''), [/has no <StorageData>/]],
    ['two <Storage> elements (a split image)', edit(INIT_DD, '    </Storage>\n', '    </Storage>\n    <Storage><Blocksize>2048</Blocksize></Storage>\n'),
      [/<StorageData> has 2 <Storage> elements, expected exactly one \(split images are not supported\)/]],
    ['another element after <Storage>', edit(INIT_DD, '    </Storage>\n', '    </Storage>\n    <Note/>\n'), [/<StorageData> has <Note> after <Storage>/]],
    ['an element other than <Image> after the first <Image>', edit(INIT_DD, '      </Image>\n', '      </Image>\n      <Preallocated>0</Preallocated>\n'),
      [/<StorageData\/Storage> has <Preallocated> after the first <Image>, expected only <Image> elements/]],
    ['<TopGUID> after the first <Shot>', AFTER_SNAPSHOT_DD.replace(`    <TopGUID>${TOPDELTA_GUID}</TopGUID>\n`, '').replace('  </Snapshots>', `    <TopGUID>${TOPDELTA_GUID}</TopGUID>\n  </Snapshots>`),
      [/<Snapshots> has <TopGUID> after the first <Shot>/]],
    ['no <Image>', INIT_DD.replace(/ {6}<Image>[^]*<\/Image>\n/, ''), [/<StorageData\/Storage> has no <Image>, expected at least one/]],
    ['an <Image> without <File>', edit(INIT_DD, '<File>root.hds</File>', ''), [/<StorageData\/Storage\/Image\[1\]> has no <File>/]],
    ['an empty <File>', edit(INIT_DD, '<File>root.hds</File>', '<File></File>'), [/Image\[1\]> has no <File> \(or it is empty\)/]],
    ['an <Image> without <GUID>', edit(INIT_DD, `<GUID>${TOPDELTA_GUID}</GUID>\n        <Type>`, '<Type>'), [/<StorageData\/Storage\/Image\[1\]> has no <GUID>/]],
    ['a <Shot> without <ParentGUID>', edit(INIT_DD, `<ParentGUID>${NONE_GUID}</ParentGUID>`, ''), [/<Snapshots\/Shot\[1\]> has no <ParentGUID>/]],
    ['an unknown <Type>', edit(INIT_DD, '<Type>Compressed</Type>', '<Type>qcow2</Type>'), [/Image\[1\]\/Type> is "qcow2", expected "Compressed" \(ploop image\) or "Plain" \(raw\)/]],
    ['Preallocated 2', edit(INIT_DD, '<Blocksize>2048</Blocksize>', '<Blocksize>2048</Blocksize><Preallocated>2</Preallocated>'), [/<StorageData\/Storage\/Preallocated> is 2, expected 0 or 1/]],
    ['Preallocated with a Plain image', edit(edit(INIT_DD, '<Blocksize>2048</Blocksize>', '<Blocksize>2048</Blocksize><Preallocated>1</Preallocated>'), 'Compressed', 'Plain'),
      [/Preallocated> is 1 but <Image\[1\]> is Plain/]],
    ['Start 2048', edit(INIT_DD, '<Start>0</Start>', '<Start>2048</Start>'), [/<StorageData\/Storage\/Start> is 2048, expected 0/]],
    ['End different from Disk_size', edit(INIT_DD, '<End>131072</End>', '<End>65536</End>'), [/<StorageData\/Storage\/End> is 65536, expected the <Disk_size> 131072/]],
    ['a hexadecimal Disk_size', edit(INIT_DD, '<Disk_size>131072</Disk_size>', '<Disk_size>0x20000</Disk_size>'), [/<Disk_Parameters\/Disk_size> is "0x20000", expected a decimal integer/]],
    ['a negative Cylinders', edit(INIT_DD, '<Cylinders>256</Cylinders>', '<Cylinders>-1</Cylinders>'), [/<Disk_Parameters\/Cylinders> is "-1", expected a decimal integer/]],
    ['Heads beyond 32 bits', edit(INIT_DD, '<Heads>16</Heads>', '<Heads>4294967296</Heads>'), [/<Disk_Parameters\/Heads> is 4294967296, expected at most 4294967295/]],
    ['an element inside a value', edit(INIT_DD, '<File>root.hds</File>', '<File><b/>root.hds</File>'), [/<StorageData\/Storage\/Image\[1\]\/File> contains element <b>, expected text only/]],
    ['TopGUID naming no shot', AFTER_SNAPSHOT_DD.replace(`<TopGUID>${TOPDELTA_GUID}`, `<TopGUID>${SNAP2}`), [new RegExp(`<Snapshots/TopGUID> is \\${SNAP2.slice(0, -1)}\\}, but no <Shot> has that GUID`)]],
    ['TopGUID naming a shot without an image', AFTER_SNAPSHOT_DD.replace(`<File>${DELTA_FILE}`, `<File>x</File></Image><Image><GUID>${SNAP2}</GUID><File>y`).replace(`<GUID>${TOPDELTA_GUID}</GUID>\n        <Type>`, `<GUID>{aaaaaaaa-0000-4000-8000-000000000000}</GUID>\n        <Type>`)
      .replace('    </Shot>\n  </Snapshots>', `    </Shot>\n    <Shot><GUID>${SNAP2}</GUID><ParentGUID>${SNAP}</ParentGUID></Shot>\n  </Snapshots>`),
    [/<Snapshots\/TopGUID> is \{5fbaabe3-.*, but no <Image> has that GUID/]],
    ['an empty TopGUID', edit(INIT_DD, `<TopGUID>${TOPDELTA_GUID}</TopGUID>`, '<TopGUID></TopGUID>'), [/<Snapshots\/TopGUID> is empty/]],
    ['a malformed TopGUID', edit(INIT_DD, `<TopGUID>${TOPDELTA_GUID}</TopGUID>`, '<TopGUID>top</TopGUID>'), [/<Snapshots\/TopGUID> is "top", expected a GUID in braces/]],
    ['a temporary top delta', edit(AFTER_SNAPSHOT_DD, `<ParentGUID>${SNAP}</ParentGUID>`, `<ParentGUID>${SNAP}</ParentGUID><Temporary/>`),
      [/<Snapshots\/TopGUID> \{5fbaabe3-.*\} names a temporary <Shot>, expected a permanent top delta/]],
    ['a ParentGUID naming no shot', edit(AFTER_SNAPSHOT_DD, `<ParentGUID>${SNAP}</ParentGUID>`, `<ParentGUID>${SNAP2}</ParentGUID>`),
      [/<Snapshots\/Shot\[2\]\/ParentGUID> is \{11111111-.*, but no <Shot> has that GUID/]],
    ['a shot that is its own parent', edit(INIT_DD, `<ParentGUID>${NONE_GUID}</ParentGUID>`, `<ParentGUID>${TOPDELTA_GUID}</ParentGUID>`),
      [/<ParentGUID> links form a cycle: \{5fbaabe3-[^ ]* -> \{5fbaabe3-/]],
    ['a two-shot cycle in parent links', edit(AFTER_SNAPSHOT_DD, `<ParentGUID>${NONE_GUID}</ParentGUID>`, `<ParentGUID>${TOPDELTA_GUID}</ParentGUID>`),
      [/<ParentGUID> links form a cycle: .*\{48378aa6-.* -> \{5fbaabe3-.* -> \{48378aa6-/, /expected every chain to end at \{00000000-/]],
    ['two images with one GUID', edit(AFTER_SNAPSHOT_DD, `<GUID>${SNAP}</GUID>\n        <Type>`, `<GUID>${TOPDELTA_GUID}</GUID>\n        <Type>`),
      [/<StorageData\/Storage\/Image\[2\]\/GUID> \{5fbaabe3-.* repeats the GUID of <Image\[1\]>/]],
    ['more images than shots after the synthesized one', edit(AFTER_SNAPSHOT_DD, `    <Shot>\n      <GUID>${TOPDELTA_GUID}</GUID>\n      <ParentGUID>${SNAP}</ParentGUID>\n    </Shot>\n`, '')
      .replace('      </Image>\n    </Storage>', `      </Image>\n      <Image><GUID>${SNAP2}</GUID><File>z</File></Image>\n    </Storage>`),
    [/3 <Image> and 2 <Shot> elements, expected as many shots as images/]],
  ];
  for (const [what, text, patterns] of cases) {
    test(`${what} is refused`, () => {
      throwsWith(() => parseDescriptor(text), 'EFORMAT', /^invalid DiskDescriptor\.xml: /, ...patterns);
    });
  }

  test('chained descriptors, encryption and Max_delta_size are ENOTSUP rather than silently dropped', () => {
    throwsWith(() => parseDescriptor(edit(INIT_DD, '    <Storage>\n', '    <Volume><Parent>..</Parent></Volume>\n    <Storage>\n')), 'ENOTSUP', /<StorageData\/Volume> \(a chained descriptor\) is not supported/);
    throwsWith(() => parseDescriptor(edit(INIT_DD, '<Padding>0</Padding>', '<Padding>0</Padding><Encryption><KeyId>k</KeyId></Encryption>')), 'ENOTSUP', /<Disk_Parameters\/Encryption>/);
    throwsWith(() => parseDescriptor(edit(INIT_DD, '<Padding>0</Padding>', '<Padding>0</Padding><Max_delta_size>1</Max_delta_size>')), 'ENOTSUP', /Max_delta_size/);
  });
});

describe('hostile and malformed XML is refused before it can do harm', () => {
  const BILLION_LAUGHS = `<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
]>
${INIT_DD.replace('<?xml version="1.0"?>\n', '').replace('<File>root.hds</File>', '<File>&lol3;</File>')}`;

  test('a DOCTYPE with nested entities (billion laughs) is refused, naming the DOCTYPE and its line', () => {
    throwsWith(() => parseDescriptor(BILLION_LAUGHS), 'EFORMAT', /<!DOCTYPE at line 2, column 1: DOCTYPE and ENTITY declarations are not allowed/, /entity expansion/);
  });

  test('an external entity (SYSTEM file:///etc/passwd) is refused', () => {
    const xxe = `<?xml version="1.0"?>\n<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n${INIT_DD.replace('<?xml version="1.0"?>\n', '').replace('<File>root.hds</File>', '<File>&xxe;</File>')}`;
    throwsWith(() => parseDescriptor(xxe), 'EFORMAT', /<!DOCTYPE at line 2/, /external entities/);
  });

  test('an external DTD, a lower-case doctype and an ENTITY declaration inside an element are refused', () => {
    throwsWith(() => parseDescriptor(`<!DOCTYPE r SYSTEM "http://example.invalid/x.dtd">\n${INIT_DD.replace('<?xml version="1.0"?>\n', '')}`), 'EFORMAT', /<!DOCTYPE at line 1/);
    throwsWith(() => parseDescriptor(`<!doctype r>\n${INIT_DD.replace('<?xml version="1.0"?>\n', '')}`), 'EFORMAT', /<!DOCTYPE at line 1/);
    throwsWith(() => parseDescriptor(edit(INIT_DD, '<Padding>0</Padding>', '<Padding>0</Padding><!ENTITY x "y">')), 'EFORMAT', /<!ENTITY at line 8/);
  });

  test('an undefined entity reference is refused instead of passing through as text', () => {
    throwsWith(() => parseDescriptor(edit(INIT_DD, '<File>root.hds</File>', '<File>&xxe;</File>')), 'EFORMAT', /undefined entity "&xxe;"/);
  });

  test('a character reference to a non-XML character (&#0;) and a raw NUL, control character or lone surrogate are refused', () => {
    throwsWith(() => parseDescriptor(edit(INIT_DD, '<File>root.hds</File>', '<File>a&#0;b</File>')), 'EFORMAT', /character reference "&#0;" is not an XML character/);
    throwsWith(() => parseDescriptor(edit(INIT_DD, '<File>root.hds</File>', '<File>a\u0000b</File>')), 'EFORMAT', /character U\+0000 at line 18, column 16 is not allowed/);
    throwsWith(() => parseDescriptor(edit(INIT_DD, '<File>root.hds</File>', '<File>a\u001bb</File>')), 'EFORMAT', /character U\+001B/);
    throwsWith(() => parseDescriptor(edit(INIT_DD, '<File>root.hds</File>', '<File>a\ud800b</File>')), 'EFORMAT', /character U\+D800/);
  });

  test('mismatched tags, text after the root, two roots and an empty document are malformed XML', () => {
    throwsWith(() => parseDescriptor(edit(INIT_DD, '</Heads>', '</Head>')), 'EFORMAT', /malformed XML at line 6, column \d+: Expected closing tag 'Heads'/);
    throwsWith(() => parseDescriptor(INIT_DD + 'junk'), 'EFORMAT', /malformed XML at line 30.*Extra text at the end/);
    throwsWith(() => parseDescriptor(INIT_DD + '<Virtuozzo_disk_image/>'), 'EFORMAT', /malformed XML: 2 root elements, expected one/);
    throwsWith(() => parseDescriptor(''), 'EFORMAT', /malformed XML.*Start tag expected/);
    throwsWith(() => parseDescriptor('  \n'), 'EFORMAT', /malformed XML/);
    throwsWith(() => parseDescriptor('<a>&</a>'), 'EFORMAT', /malformed XML.*'&'/);
  });

  test('every truncation of the init document is refused as EFORMAT', () => {
    const end = INIT_DD.lastIndexOf('>') + 1;
    for (let length = 0; length < end; length++) {
      assert.throws(() => parseDescriptor(INIT_DD.slice(0, length)), (e: unknown) => e instanceof PloopError && e.code === 'EFORMAT',
        `prefix of ${length} bytes was accepted`);
    }
  });

  test('a 2 MiB document is refused by size before parsing; 1 MiB exactly is accepted', () => {
    const pad = (bytes: number) => `<!--${'x'.repeat(bytes - INIT_DD.length - 8)}-->\n`;
    throwsWith(() => parseDescriptor(INIT_DD + pad(2 * MAX_DESCRIPTOR_BYTES)), 'EFORMAT', /the document is at least 2097152 bytes, expected at most 1048576 \(1 MiB\)/);
    const exact = INIT_DD + pad(MAX_DESCRIPTOR_BYTES);
    assert.equal(Buffer.byteLength(exact), MAX_DESCRIPTOR_BYTES);
    assert.deepEqual(parseDescriptor(exact), INIT_MODEL);
    // Counted in UTF-8 bytes, not characters: 600k two-byte characters are 1.2 MB.
    throwsWith(() => parseDescriptor(`${INIT_DD}<!--${'é'.repeat(600000)}-->`), 'EFORMAT', new RegExp(`the document is ${Buffer.byteLength(INIT_DD) + 7 + 1200000} bytes`));
  });

  test('nesting deeper than 32 elements is refused', () => {
    const deep = edit(INIT_DD, '<Padding>0</Padding>', `${'<n>'.repeat(40)}${'</n>'.repeat(40)}<Padding>0</Padding>`);
    throwsWith(() => parseDescriptor(deep), 'EFORMAT', /malformed XML: Maximum nested tags exceeded/);
  });

  test('a non-string argument is EINVAL', () => {
    throwsWith(() => parseDescriptor(new Uint8Array(4) as unknown as string), 'EINVAL', /expected the document as a string, got object/);
  });
});

describe('descriptorChain', () => {
  test('orders the stack base first, top last, following ParentGUID from TopGUID', () => {
    assert.deepEqual(descriptorChain(threeLevels()), [
      { guid: SNAP, file: 'root.hds', type: 'Compressed' },
      { guid: SNAP2, file: DELTA_FILE, type: 'Compressed' },
      { guid: TOPDELTA_GUID, file: 'root.hds.2', type: 'Compressed' },
    ]);
  });

  test('the chain follows links, not document order, and ignores images off the chain', () => {
    const d = threeLevels();
    const branch = '{bbbbbbbb-0000-4000-8000-000000000000}';
    const shuffled: DiskDescriptor = {
      ...d,
      images: [d.images[2]!, { guid: branch, type: 'Compressed', file: 'branch.hds' }, d.images[0]!, d.images[1]!],
      snapshots: [d.snapshots[1]!, { guid: branch, parentGuid: SNAP }, d.snapshots[2]!, d.snapshots[0]!],
    };
    validateDescriptor(shuffled);
    assert.deepEqual(descriptorChain(shuffled).map((e) => e.file), ['root.hds', DELTA_FILE, 'root.hds.2']);
  });

  test('a cycle or a missing image in a hand-built descriptor is EFORMAT', () => {
    const d = afterSnapshot();
    const cyclic: DiskDescriptor = { ...d, snapshots: [{ guid: SNAP, parentGuid: TOPDELTA_GUID }, d.snapshots[1]!] };
    throwsWith(() => descriptorChain(cyclic), 'EFORMAT', /<ParentGUID> links form a cycle: \{5fbaabe3-.* -> \{48378aa6-.* -> \{5fbaabe3-/);
    const noImage: DiskDescriptor = { ...d, images: [d.images[1]!] };
    throwsWith(() => descriptorChain(noImage), 'EFORMAT', /the chain from <TopGUID> reaches \{48378aa6-.*, but no <Image> has that GUID/);
    throwsWith(() => validateDescriptor(cyclic), 'EINVAL', /^invalid disk descriptor: <ParentGUID> links form a cycle/);
  });
});

describe('snapshot, merge and delete edit the descriptor as ploop does', () => {
  test('addSnapshot names the new delta <first file>.<random GUID> and relabels the top with a random GUID by default', () => {
    const d = addSnapshot(newDescriptor({ sizeSectors: 131072 }));
    const [base, top] = d.images;
    assert.match(top!.file, /^root\.hds\.\{[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\}$/);
    assert.ok(isValidGuid(base!.guid) && base!.guid !== TOPDELTA_GUID);
    assert.notEqual(top!.file, `root.hds.${base!.guid}`);
    assert.deepEqual(d.snapshots, [{ guid: base!.guid, parentGuid: NONE_GUID }, { guid: TOPDELTA_GUID, parentGuid: base!.guid }]);
  });

  test('addSnapshot leaves its input untouched', () => {
    const before = afterSnapshot();
    const copy = structuredClone(before);
    addSnapshot(before, { newFile: 'root.hds.2', snapshotGuid: SNAP2 });
    mergeTopIntoParent(before);
    deleteSnapshot(before, SNAP);
    assert.deepEqual(before, copy);
  });

  test('addSnapshot refuses a GUID or a file already in use, a bad GUID, and an old-format top', () => {
    const d = afterSnapshot();
    throwsWith(() => addSnapshot(d, { snapshotGuid: SNAP.toUpperCase() }), 'EINVAL', /the snapshot \{48378AA6-.* already exists/);
    throwsWith(() => addSnapshot(d, { newFile: 'root.hds' }), 'EINVAL', /newFile "root.hds" is already the file of an image/);
    throwsWith(() => addSnapshot(d, { snapshotGuid: 'nope' }), 'EINVAL', /snapshotGuid is "nope", expected a GUID in braces/);
    const old = parseDescriptor(AFTER_SNAPSHOT_DD.replaceAll(TOPDELTA_GUID, SNAP2));
    throwsWith(() => addSnapshot(old), 'EINVAL', /TopGUID is \{11111111-.*Snapshot is in old format/);
  });

  test(`addSnapshot allows a chain of ${MAX_CHAIN_BEFORE_SNAPSHOT} images to grow and refuses the next one, as ploop's 128-image limit does`, () => {
    let d = newDescriptor({ sizeSectors: 131072 });
    for (let n = 1; n < MAX_CHAIN_BEFORE_SNAPSHOT; n++) d = addSnapshot(d, { newFile: `root.hds.${n}` });
    assert.equal(descriptorChain(d).length, MAX_CHAIN_BEFORE_SNAPSHOT);
    d = addSnapshot(d, { newFile: 'root.hds.last' });
    assert.equal(descriptorChain(d).length, MAX_CHAIN_BEFORE_SNAPSHOT + 1);
    throwsWith(() => addSnapshot(d), 'EINVAL', /the maximum number of snapshots \(126\) has been reached/);
  });

  test('mergeTopIntoParent undoes a snapshot: the base file survives with the TOPDELTA GUID and the delta file goes', () => {
    const { descriptor, removedFile } = mergeTopIntoParent(afterSnapshot());
    assert.equal(removedFile, DELTA_FILE);
    assert.equal(serializeDescriptor(descriptor), INIT_DD);
  });

  test('removeTopDelta discards the top: same descriptor as the merge, the delta file goes', () => {
    const { descriptor, removedFile } = removeTopDelta(afterSnapshot());
    assert.equal(removedFile, DELTA_FILE);
    assert.equal(serializeDescriptor(descriptor), INIT_DD);
    throwsWith(() => removeTopDelta(newDescriptor({ sizeSectors: 131072 })), 'EINVAL', /is the base image, it cannot be deleted/);
  });

  test('mergeIntoParent of the middle delta: its parent (the base file) takes the middle GUID, the top still points at it', () => {
    const { descriptor, removedFile } = mergeIntoParent(threeLevels(), SNAP2);
    assert.equal(removedFile, DELTA_FILE);
    assert.deepEqual(descriptor.images.map((i) => [i.guid, i.file]), [[SNAP2, 'root.hds'], [TOPDELTA_GUID, 'root.hds.2']]);
    assert.deepEqual(descriptor.snapshots, [{ guid: SNAP2, parentGuid: NONE_GUID }, { guid: TOPDELTA_GUID, parentGuid: SNAP2 }]);
  });

  test('deleteSnapshot merges the only child into the snapshot, drops a leaf top, and marks a snapshot with two children temporary', () => {
    const middle = deleteSnapshot(threeLevels(), SNAP2);
    assert.equal(middle.removedFile, 'root.hds.2');
    assert.deepEqual(middle.descriptor.images.map((i) => [i.guid, i.file]), [[SNAP, 'root.hds'], [TOPDELTA_GUID, DELTA_FILE]]);
    const base = deleteSnapshot(threeLevels(), SNAP);
    assert.equal(base.removedFile, DELTA_FILE);
    assert.deepEqual(base.descriptor.images.map((i) => [i.guid, i.file]), [[SNAP2, 'root.hds'], [TOPDELTA_GUID, 'root.hds.2']]);
    const top = deleteSnapshot(threeLevels(), TOPDELTA_GUID);
    assert.equal(top.removedFile, 'root.hds.2');
    assert.deepEqual(top.descriptor.images.map((i) => [i.guid, i.file]), [[SNAP, 'root.hds'], [TOPDELTA_GUID, DELTA_FILE]]);
    assert.deepEqual(top.descriptor.snapshots, [{ guid: SNAP, parentGuid: NONE_GUID }, { guid: TOPDELTA_GUID, parentGuid: SNAP }]);

    const d = afterSnapshot();
    const branch = '{bbbbbbbb-0000-4000-8000-000000000000}';
    const forked: DiskDescriptor = { ...d, images: [...d.images, { guid: branch, type: 'Compressed', file: 'b.hds' }], snapshots: [...d.snapshots, { guid: branch, parentGuid: SNAP }] };
    const marked = deleteSnapshot(forked, SNAP);
    assert.equal(marked.removedFile, null);
    assert.equal(marked.descriptor.snapshots[0]!.temporary, true);
    throwsWith(() => mergeIntoParent(forked, branch), 'EINVAL', /the parent \{48378aa6-.* has 2 children, expected one/);
  });

  test('deleteSnapshot refuses the base, an unknown GUID, and dropping a top whose parent is temporary', () => {
    throwsWith(() => deleteSnapshot(newDescriptor({ sizeSectors: 131072 }), TOPDELTA_GUID), 'EINVAL', /is the base image, it cannot be deleted/);
    throwsWith(() => deleteSnapshot(afterSnapshot(), SNAP2), 'EINVAL', /no snapshot has the GUID "\{11111111-/);
    throwsWith(() => mergeIntoParent(afterSnapshot(), SNAP), 'EINVAL', /is the base image, it has no parent to merge into/);
    const d = afterSnapshot();
    d.snapshots[0]!.temporary = true;
    throwsWith(() => deleteSnapshot(d, TOPDELTA_GUID), 'EINVAL', /cannot delete the top delta, its parent \{48378aa6-.* is temporary/);
  });

  test('serializeDescriptor and the edits refuse an invalid descriptor with EINVAL naming the field', () => {
    throwsWith(() => serializeDescriptor({ ...INIT_MODEL, blocksizeSectors: 3000 }), 'EINVAL', /^invalid disk descriptor: <StorageData\/Storage\/Blocksize> is 3000/);
    throwsWith(() => serializeDescriptor({ ...INIT_MODEL, rootElement: 'a b' }), 'EINVAL', /root element name "a b" is not an XML name/);
    throwsWith(() => serializeDescriptor({ ...INIT_MODEL, images: [{ ...INIT_MODEL.images[0]!, file: 'a\u0000' }] }), 'EINVAL', /Image\[1\]\/File> is "a\\u0000"/);
    throwsWith(() => serializeDescriptor({ ...INIT_MODEL, diskSizeSectors: -1 }), 'EINVAL', /<Disk_Parameters\/Disk_size> is -1, expected an integer from 0/);
    throwsWith(() => mergeTopIntoParent({ ...INIT_MODEL, topGuid: 'x' }), 'EINVAL', /<Snapshots\/TopGUID> is "x"/);
    throwsWith(() => newDescriptor({ sizeSectors: 0 }), 'EINVAL', /newDescriptor: sizeSectors is 0, expected a positive whole number/);
    throwsWith(() => newDescriptor({ sizeSectors: 131072, blocksizeSectors: 1000 }), 'EINVAL', /Blocksize> is 1000, expected a power of two/);
  });
});

describe('randomGuid', () => {
  test('gives distinct version-4 GUIDs in ploop\'s braced lower-case form', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const g = randomGuid();
      assert.match(g, /^\{[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}\}$/);
      seen.add(g);
    }
    assert.equal(seen.size, 1000);
  });
});

// Debian's ploop 1.15 (apt-get install -y ploop) reads descriptors and merges offline without the
// kernel module (docs/format.md, 'The oracles'). It writes the root element Parallels_disk_image.
describe('Debian ploop 1.15 reads and edits our descriptors the same way', () => {
  const PLOOP = 'ploop';

  async function requirePloop(): Promise<void> {
    const r = await run(PLOOP, ['--help']).catch((e: unknown) => {
      throw new Error(`the ploop oracle is missing (install the Debian package: apt-get install -y ploop): ${String(e)}`);
    });
    assert.ok(r.stdout.length + r.stderr.length > 0);
  }

  /** A folder with our descriptor and qemu-img-made 64 MiB images for every <File>. */
  async function folder(dir: string, d: DiskDescriptor): Promise<string> {
    for (const image of d.images) await qemuCreate(join(dir, image.file), '64M', '1M');
    const path = join(dir, 'DiskDescriptor.xml');
    await writeFile(path, serializeDescriptor(d));
    return path;
  }

  async function exists(path: string): Promise<boolean> {
    return access(path).then(() => true, () => false);
  }

  test('snapshot-list lists our chain with the same GUIDs, parents, current mark and files', async () => {
    await requirePloop();
    await withTempDir(async (dir) => {
      const d = threeLevels();
      const path = await folder(dir, d);
      const r = await runOk(PLOOP, ['snapshot-list', '-H', '-o', 'uuid,parent_uuid,current,fname', path]);
      const rows = r.stdout.trim().split('\n').map((line) => line.trim().split(/\s+/));
      const expected = d.snapshots.map((s) => [s.guid, s.parentGuid, ...(s.guid === d.topGuid ? ['*'] : []),
        join(dir, d.images.find((i) => i.guid === s.guid)!.file)]);
      assert.deepEqual(rows, expected);
    });
  });

  test('snapshot-merge writes exactly the descriptor mergeTopIntoParent gives and deletes the same file', async () => {
    await requirePloop();
    await withTempDir(async (dir) => {
      const path = await folder(dir, threeLevels());
      await runOk(PLOOP, ['snapshot-merge', path]);
      const { descriptor, removedFile } = mergeTopIntoParent(threeLevels());
      assert.equal(await readFile(path, 'utf8'), serializeDescriptor({ ...descriptor, rootElement: 'Parallels_disk_image' }));
      assert.equal(await exists(join(dir, removedFile!)), false);
    });
  });

  for (const [label, guid] of [['the middle snapshot (merged with its child)', SNAP2], ['the base (its child merged into it)', SNAP], ['the top (dropped)', TOPDELTA_GUID]] as const) {
    test(`snapshot-delete of ${label} writes exactly the descriptor deleteSnapshot gives`, async () => {
      await requirePloop();
      await withTempDir(async (dir) => {
        const path = await folder(dir, threeLevels());
        await runOk(PLOOP, ['snapshot-delete', '-u', guid, path]);
        const { descriptor, removedFile } = deleteSnapshot(threeLevels(), guid);
        assert.equal(await readFile(path, 'utf8'), serializeDescriptor({ ...descriptor, rootElement: 'Parallels_disk_image' }));
        assert.equal(await exists(join(dir, removedFile!)), false);
      });
    });
  }

  test('ploop accepts the variants we accept and refuses those we refuse', async () => {
    await requirePloop();
    const variants: Array<[string, string, boolean]> = [
      ['init', INIT_DD, true],
      ['no declaration', INIT_DD.replace('<?xml version="1.0"?>\n', ''), true],
      ['Parallels root', INIT_DD.replaceAll('Virtuozzo_disk_image', 'Parallels_disk_image'), true],
      ['upper-case GUIDs', INIT_DD.replaceAll(TOPDELTA_GUID, TOPDELTA_GUID.toUpperCase()), true],
      ['no TopGUID', edit(AFTER_SNAPSHOT_DD, `<TopGUID>${TOPDELTA_GUID}</TopGUID>`, ''), true],
      ['comment', INIT_DD.replace('<Heads>', '<!-- c --><Heads>'), true],
      ['no CHS', INIT_DD.replace(/ {4}<(Cylinders|Heads|Sectors|Padding)>.*\n/g, ''), true],
      ['GUID without braces', INIT_DD.replaceAll(TOPDELTA_GUID, TOPDELTA_GUID.slice(1, -1)), false],
      ['Blocksize 1000', INIT_DD.replace('<Blocksize>2048', '<Blocksize>1000'), false],
      ['no Snapshots', INIT_DD.replace(/ {2}<Snapshots>[^]*<\/Snapshots>\n/, ''), false],
      ['two Storage', edit(INIT_DD, '    </Storage>\n', '    </Storage>\n    <Storage><Blocksize>2048</Blocksize></Storage>\n'), false],
      ['element after first Image', edit(INIT_DD, '      </Image>\n', '      </Image>\n      <Preallocated>0</Preallocated>\n'), false],
      ['TopGUID after first Shot', edit(INIT_DD, `    <TopGUID>${TOPDELTA_GUID}</TopGUID>\n`, '').replace('  </Snapshots>', `    <TopGUID>${TOPDELTA_GUID}</TopGUID>\n  </Snapshots>`), false],
      ['malformed', edit(INIT_DD, '</Heads>', '</Head>'), false],
    ];
    for (const [label, text, accepted] of variants) {
      let ours = true;
      try {
        parseDescriptor(text);
      } catch {
        ours = false;
      }
      assert.equal(ours, accepted, `parseDescriptor on "${label}"`);
      await withTempDir(async (dir) => {
        const path = join(dir, 'DiskDescriptor.xml');
        await writeFile(path, text);
        const r = await run(PLOOP, ['snapshot-list', '-H', '-o', 'uuid,parent_uuid,current,fname', path]);
        assert.equal(r.code === 0, accepted, `ploop snapshot-list on "${label}": exit ${r.code} ${r.stderr.trim()}`);
      });
    }
  });
});
