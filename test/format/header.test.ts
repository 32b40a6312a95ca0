// Header parsing, serialization, qemu-img-compatible creation values, and the exact error for
// every malformed header or BAT (docs/format.md, 'The header', 'The BAT', 'Open: what is refused').

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import {
  parseHeader, serializeHeader, newHeader, deriveGeometry, minDataOffSectors, dataOffValid, inUseValid, inUseMessage,
  HEADER_BYTES, MAX_TRACKS, MAX_BAT_ENTRIES, INUSE_MAGIC, CLOSED_V21_MAGIC, SIGNATURE_V1, SIGNATURE_V2,
  type PloopHeader,
} from '../../src/format/header.ts';
import { PloopImage } from '../../src/engine/image.ts';
import { createImage } from '../../src/engine/create.ts';
import { MemoryStore } from '../../src/stores/memory.ts';
import { PloopError } from '../../src/errors.ts';
import { rejectsWith } from '../helpers/errors.ts';

const KiB = 1024;
const MiB = 1024 * KiB;

/** 64 header bytes from a header, with fields patched as raw little-endian u32s. */
function headerBytes(h: PloopHeader, patch: Record<number, number> = {}): Uint8Array {
  const bytes = serializeHeader(h);
  const dv = new DataView(bytes.buffer);
  for (const [off, v] of Object.entries(patch)) dv.setUint32(Number(off), v >>> 0, true);
  return bytes;
}

const base = () => newHeader({ size: 64 * MiB, clusterBytes: 64 * KiB });

function u32At(bytes: Uint8Array, off: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(off, true);
}
function setU32(bytes: Uint8Array, off: number, v: number): void {
  new DataView(bytes.buffer, bytes.byteOffset).setUint32(off, v >>> 0, true);
}

/**
 * A closed image on a MemoryStore: v1 or v2, 4 KiB clusters, 8 MiB virtual (2048 entries, so
 * header + BAT take 3 clusters and data starts at byte 12288), clusters 0, 1 and 2 written.
 */
async function smallImage(format: 'v1' | 'v2'): Promise<Uint8Array> {
  const store = new MemoryStore();
  await createImage(store, { size: 8 * MiB, clusterSize: 4 * KiB, format });
  const img = await PloopImage.open(store, { writable: true, keepStoreOpen: true });
  for (let c = 0; c < 3; c++) await img.write(c * 4096, new Uint8Array(4096).fill(c + 1));
  await img.close();
  return store.bytes().slice();
}

const openBytes = (bytes: Uint8Array) => PloopImage.open(new MemoryStore(bytes), { onWarning: () => {} });

/**
 * A damaged image: a writable open is refused with ECORRUPT matching `patterns`; a read-only
 * open reads it as QEMU does and warns in the same words (issue #19: an inspector shows it).
 */
async function refusedForWriting(bytes: Uint8Array, ...patterns: RegExp[]): Promise<PloopError> {
  const e = await rejectsWith(() => PloopImage.open(new MemoryStore(bytes.slice()), { writable: true, onWarning: () => {} }), 'ECORRUPT', ...patterns);
  const warnings: string[] = [];
  const img = await PloopImage.open(new MemoryStore(bytes.slice(), { writable: false }), { onWarning: (m) => warnings.push(m) });
  await img.close();
  for (const p of patterns) assert.match(warnings.join('\n'), p, 'the read-only open warns in the same words');
  return e;
}

describe('header round trip', () => {
  test('a v2 header survives serializeHeader then parseHeader with every field, 64-bit ones included', () => {
    const h: PloopHeader = {
      ...newHeader({ size: 3 * 2 ** 40, clusterBytes: MiB }),
      inUse: INUSE_MAGIC,
      flags: 1,
      extOff: 2 ** 33 + 2048,
    };
    assert.ok(h.nbSectors > 2 ** 32, 'the size needs the high word of nb_sectors');
    const bytes = serializeHeader(h);
    assert.equal(bytes.length, HEADER_BYTES);
    assert.equal(String.fromCharCode(...bytes.subarray(0, 16)), SIGNATURE_V2);
    assert.deepEqual(parseHeader(bytes), h);
  });

  test('a v1 header survives the round trip, including a non-zero high word of nb_sectors', () => {
    const h: PloopHeader = { ...newHeader({ size: 100 * MiB + 512, clusterBytes: 64 * KiB, format: 'v1' }), nbSectorsHigh: 7, inUse: CLOSED_V21_MAGIC };
    const bytes = serializeHeader(h);
    assert.equal(String.fromCharCode(...bytes.subarray(0, 16)), SIGNATURE_V1);
    assert.equal(u32At(bytes, 40), 7);
    assert.deepEqual(parseHeader(bytes), h);
    assert.deepEqual(serializeHeader(parseHeader(bytes)), bytes);
  });

  test('serializeHeader puts each field at its documented offset, little-endian', () => {
    const h: PloopHeader = { ...base(), inUse: INUSE_MAGIC, flags: 2, extOff: 0x1_0000_0200 };
    const b = serializeHeader(h);
    assert.equal(u32At(b, 16), 2);
    assert.equal(u32At(b, 20), 16);
    assert.equal(u32At(b, 24), 256);
    assert.equal(u32At(b, 28), 128);
    assert.equal(u32At(b, 32), 1024);
    assert.equal(u32At(b, 36), 131072);
    assert.equal(u32At(b, 40), 0);
    assert.deepEqual([...b.subarray(44, 48)], [0x59, 0x6e, 0x6f, 0x74]); // "Ynot"
    assert.equal(u32At(b, 48), 128);
    assert.equal(u32At(b, 52), 2);
    assert.equal(u32At(b, 56), 0x200);
    assert.equal(u32At(b, 60), 1);
  });

  test('parseHeader reads a header that sits inside a larger buffer at a non-zero byteOffset', () => {
    const backing = new Uint8Array(200);
    backing.set(serializeHeader(base()), 8);
    assert.deepEqual(parseHeader(backing.subarray(8)), base());
  });
});

describe('newHeader matches qemu-img create -f parallels (with CIF_Empty set, as ploop init does)', () => {
  test('64 MiB with 64 KiB clusters gives tracks 128, 1024 entries, 131072 sectors, data_off 128, 256 cylinders, 16 heads, flags 1', () => {
    const h = newHeader({ size: 64 * MiB, clusterBytes: 64 * KiB });
    assert.deepEqual(h, {
      format: 'v2', version: 2, heads: 16, cylinders: 256, tracks: 128, batEntries: 1024, nbSectors: 131072,
      nbSectorsHigh: 0, inUse: 0, dataOff: 128, flags: 1, extOff: 0,
    });
  });

  test('4 MiB with 1 MiB clusters gives tracks 2048, 4 entries, data_off 2048 and 16 cylinders', () => {
    const h = newHeader({ size: 4 * MiB, clusterBytes: MiB });
    assert.equal(h.tracks, 2048);
    assert.equal(h.batEntries, 4);
    assert.equal(h.nbSectors, 8192);
    assert.equal(h.dataOff, 2048);
    assert.equal(h.cylinders, 16);
  });

  test('the default cluster is 1 MiB and a non-power-of-two size rounds the entries up', () => {
    const h = newHeader({ size: 100 * MiB + 512 });
    assert.equal(h.tracks, 2048);
    assert.equal(h.nbSectors, 204801);
    assert.equal(h.batEntries, 101);
    assert.equal(h.dataOff, 2048);
    assert.equal(h.cylinders, Math.floor(204801 / 16 / 32));
  });

  test('a 1536 KiB cluster (not a power of two) is accepted and keeps data_off cluster aligned', () => {
    const h = newHeader({ size: 64 * MiB, clusterBytes: 1536 * KiB });
    assert.equal(h.tracks, 3072);
    assert.equal(h.batEntries, Math.ceil((64 * MiB) / (1536 * KiB)));
    assert.equal(h.dataOff, 3072);
    assert.deepEqual(parseHeader(serializeHeader(h)), h);
  });

  test('a size that is not a multiple of 512 rounds nb_sectors up', () => {
    assert.equal(newHeader({ size: 1000, clusterBytes: 4096 }).nbSectors, 2);
  });

  test('data_off grows to a second cluster once header + BAT pass one cluster', () => {
    // 64 + 4 * 1009 = 4100 bytes > 4096: two 4 KiB clusters.
    const h = newHeader({ size: 1009 * 4096, clusterBytes: 4096 });
    assert.equal(h.batEntries, 1009);
    assert.equal(h.dataOff, 16);
    assert.equal(minDataOffSectors(1008, 8), 8);
  });

  test('createImage writes exactly data_off * 512 bytes: 65536 for 64 MiB / 64 KiB', async () => {
    const store = new MemoryStore();
    const h = await createImage(store, { size: 64 * MiB, clusterSize: 64 * KiB });
    const bytes = store.bytes();
    assert.equal(bytes.length, 65536);
    assert.deepEqual(bytes.subarray(0, 64), serializeHeader(h));
    assert.ok(bytes.subarray(64).every((b) => b === 0), 'the BAT area is zeros');
  });

  test('newHeader refuses a cluster that is not a positive multiple of 512 or is too big, and a negative size', async () => {
    await rejectsWith(() => newHeader({ size: MiB, clusterBytes: 1000 }), 'EINVAL', /cluster size 1000 is not a positive multiple of 512/);
    await rejectsWith(() => newHeader({ size: MiB, clusterBytes: 0 }), 'EINVAL', /cluster size 0/);
    await rejectsWith(() => newHeader({ size: MiB, clusterBytes: (MAX_TRACKS + 1) * 512 }), 'EINVAL', /too large, expected at most 2143297024 bytes/);
    await rejectsWith(() => newHeader({ size: -1, clusterBytes: 4096 }), 'EINVAL', /size -1 is not a whole number of bytes/);
    await rejectsWith(() => newHeader({ size: 2 ** 32 * 512, clusterBytes: 1 << 20, format: 'v1' }), 'EINVAL', /v1 limit/);
    await rejectsWith(() => newHeader({ size: (MAX_BAT_ENTRIES + 1) * 512, clusterBytes: 512 }), 'EINVAL', /needs 536870912 BAT entries.*at most 536870911/);
  });
});

describe('malformed headers are refused with a specific PloopError', () => {
  test('a wrong signature is EFORMAT naming the signature seen and both accepted ones', async () => {
    const bytes = headerBytes(base());
    bytes.set([...'WithoutFreeSpacX'].map((c) => c.charCodeAt(0)), 0);
    await rejectsWith(() => parseHeader(bytes), 'EFORMAT', /signature/, /"WithoutFreeSpacX"/, /expected "WithoutFreeSpace" \(v1\) or "WithouFreSpacExt" \(v2\)/);
    // Unprintable bytes are shown as dots, not raw.
    bytes.fill(0, 0, 16);
    const e = await rejectsWith(() => parseHeader(bytes), 'EFORMAT', /signature is "\.{16}"/);
    assert.equal(e.data.field, 'signature');
  });

  test('version 3 is EFORMAT naming the version and the expected 2', async () => {
    const e = await rejectsWith(() => parseHeader(headerBytes(base(), { 16: 3 })), 'EFORMAT', /version is 3, expected 2/);
    assert.equal(e.data.value, 3);
  });

  test('tracks 0 is EFORMAT naming tracks (the cluster size) and the minimum 1', async () => {
    const e = await rejectsWith(() => parseHeader(headerBytes(base(), { 28: 0 })), 'EFORMAT', /tracks \(cluster size in sectors\) is 0, expected at least 1/);
    assert.equal(e.data.field, 'tracks (cluster size in sectors)');
  });

  test('tracks 4186128 (QEMU "Too big cluster") is EFORMAT naming the value and the limit 4186127, and 4186127 is accepted', async () => {
    await rejectsWith(() => parseHeader(headerBytes(base(), { 28: 4186128, 32: 1 })), 'EFORMAT', /tracks .* is 4186128 \(2143297536 bytes\), expected at most 4186127/);
    const h = parseHeader(headerBytes(base(), { 28: 4186127, 32: 1 }));
    assert.equal(h.tracks, MAX_TRACKS);
    assert.equal(MAX_TRACKS, 4186127);
  });

  test('bat_entries 536870912 (QEMU "Catalog too large") is EFORMAT, and 536870911 parses', async () => {
    await rejectsWith(() => parseHeader(headerBytes(base(), { 32: 536870912 })), 'EFORMAT', /bat_entries is 536870912, expected at most 536870911/);
    assert.equal(parseHeader(headerBytes(base(), { 32: 536870911 })).batEntries, 536870911);
  });

  test('nb_sectors needing more clusters than bat_entries is EFORMAT naming both', async () => {
    // 64 MiB / 64 KiB: 1024 entries of 128 sectors hold 131072 sectors; one more needs entry 1025.
    await rejectsWith(() => parseHeader(headerBytes(base(), { 36: 131073 })), 'EFORMAT', /nb_sectors is 131073 \(1025 clusters of 128 sectors\), but bat_entries is only 1024/);
    assert.equal(parseHeader(headerBytes(base(), { 36: 131072 })).nbSectors, 131072);
    // v2 uses the high word too.
    await rejectsWith(() => parseHeader(headerBytes(base(), { 40: 1 })), 'EFORMAT', /nb_sectors is 4295098368/);
  });

  test('an inuse value other than 0, "Ynot" or "v2.1" parses (QEMU reads it as closed) and is named in hex with the three allowed values', async () => {
    const h = parseHeader(headerBytes(base(), { 44: 0xdeadbeef }));
    assert.equal(inUseValid(h), false);
    assert.match(inUseMessage(h), /in-use field \(header byte 44\) is 0xdeadbeef, expected 0, 0x746f6e59 \(in use\) or 0x312e3276/);
    for (const ok of [0, INUSE_MAGIC, CLOSED_V21_MAGIC]) assert.equal(inUseValid(parseHeader(headerBytes(base(), { 44: ok }))), true);
  });

  test('a file shorter than 64 bytes is EFORMAT naming its size and the 64 a header needs, from parseHeader and from open', async () => {
    const full = headerBytes(base());
    await rejectsWith(() => parseHeader(full.subarray(0, 10)), 'EFORMAT', /10 bytes, a header needs 64/);
    await rejectsWith(() => openBytes(full.slice(0, 63)), 'EFORMAT', /63 bytes, a header needs 64/);
    await rejectsWith(() => openBytes(new Uint8Array(0)), 'EFORMAT', /0 bytes, a header needs 64/);
  });

  test('a v1 header with the high word of nb_sectors set is accepted with the word masked off, like QEMU', async () => {
    const h = newHeader({ size: 8 * MiB, clusterBytes: 4 * KiB, format: 'v1' });
    const bytes = headerBytes(h, { 40: 0xffffffff });
    const parsed = parseHeader(bytes);
    assert.equal(parsed.nbSectors, 16384);
    assert.equal(parsed.nbSectorsHigh, 0xffffffff);
    // And the image opens with the masked size.
    const file = new Uint8Array(h.dataOff * 512);
    file.set(bytes);
    const img = await openBytes(file);
    try {
      assert.equal(img.size, 8 * MiB);
    } finally {
      await img.close();
    }
  });
});

describe('headers that do not fit the file', () => {
  test('a BAT larger than the file is EFORMAT naming bat_entries, the BAT end and the file size, before any allocation', async () => {
    const h = { ...newHeader({ size: 8 * MiB, clusterBytes: 4 * KiB }), batEntries: 5000, nbSectors: 8 };
    const file = new Uint8Array(4096);
    file.set(serializeHeader(h));
    await rejectsWith(() => deriveGeometry(parseHeader(file), 4096), 'EFORMAT', /bat_entries 5000 needs a BAT ending at byte 20064, but the file has only 4096 bytes/);
    await rejectsWith(() => openBytes(file), 'EFORMAT', /bat_entries 5000 needs a BAT ending at byte 20064/);
    // Lenient (check) mode cannot guess a BAT either.
    await rejectsWith(() => deriveGeometry(parseHeader(file), 4096, true), 'EFORMAT', /bat_entries/);
  });

  test('data_off inside the header/BAT area is ECORRUPT naming data_off, where it points and the valid range', async () => {
    const bytes = await smallImage('v2');
    setU32(bytes, 48, 1);
    const h = parseHeader(bytes);
    assert.equal(dataOffValid(h, bytes.length), false);
    await rejectsWith(() => deriveGeometry(h, bytes.length), 'ECORRUPT', /data_off is 1 sectors \(inside the header\/BAT area\), expected 24 to 48 sectors/);
    await refusedForWriting(bytes, /data_off is 1 sectors \(inside the header\/BAT area\)/);
    // With lenient the minimum replaces it.
    assert.equal(deriveGeometry(h, bytes.length, true).firstSlotByte, 12288);
  });

  test('data_off past the end of the file is ECORRUPT from deriveGeometry and from PloopImage.open on a MemoryStore', async () => {
    const bytes = await smallImage('v2');
    assert.equal(bytes.length, 6 * 4096);
    setU32(bytes, 48, 0xffffffff);
    const e = await rejectsWith(() => deriveGeometry(parseHeader(bytes), bytes.length), 'ECORRUPT', /data_off is 4294967295 sectors \(past the end of the file\), expected 24 to 48 sectors/);
    assert.equal(e.data.field, 'data_off');
    await refusedForWriting(bytes, /data_off is 4294967295 sectors \(past the end of the file\)/);
    // One sector past the end is already too far; exactly the end is allowed.
    setU32(bytes, 48, 49);
    await refusedForWriting(bytes, /data_off is 49 sectors \(past the end/);
    setU32(bytes, 48, 48);
    assert.equal(dataOffValid(parseHeader(bytes), bytes.length), true);
  });

  test('a v2 data_off between the BAT end and the cluster-rounded minimum is ECORRUPT "not rounded to a whole cluster"', async () => {
    const bytes = await smallImage('v2');
    setU32(bytes, 48, 17); // BAT ends at byte 8256 = sector 16.1; minimum is 24
    await refusedForWriting(bytes, /data_off is 17 sectors \(not rounded to a whole cluster\), expected 24/);
  });

  test('a v1 data_off of 0 is valid and puts data right after the sector-rounded BAT', () => {
    const h = { ...newHeader({ size: 8 * MiB, clusterBytes: 4 * KiB, format: 'v1' }), dataOff: 0 };
    assert.equal(dataOffValid(h, 4096), true);
    assert.equal(deriveGeometry(h, 100000).firstSlotByte, Math.ceil((64 + 4 * 2048) / 512) * 512);
    // v2 never accepts 0.
    assert.equal(dataOffValid({ ...h, format: 'v2' }, 100000), false);
  });
});

describe('bad BAT entries: a writable open is refused with ECORRUPT naming the entry, a read-only one reads as QEMU does and warns', () => {
  test('the reference images open and read back what was written (v1 sector units, v2 cluster units)', async () => {
    for (const format of ['v1', 'v2'] as const) {
      const bytes = await smallImage(format);
      assert.equal(u32At(bytes, 64), format === 'v1' ? 24 : 3, `${format} BAT[0]`);
      const img = await openBytes(bytes);
      try {
        assert.deepEqual(await img.read(4096, 4096), new Uint8Array(4096).fill(2));
        assert.equal(img.allocatedClusters(), 3);
      } finally {
        await img.close();
      }
    }
  });

  test('an entry pointing into the header/BAT area is ECORRUPT naming the entry, its byte and where data starts', async () => {
    const bytes = await smallImage('v2');
    setU32(bytes, 64 + 4 * 5, 1); // entry 5 → cluster 1 = byte 4096, inside the BAT
    const e = await refusedForWriting(bytes, /entry 5 \(host byte 4096\) points into the header\/BAT area \(data starts at byte 12288\)/);
    assert.equal(e.data.kind, 'metadata');
  });

  test('an entry pointing past the end of the file is ECORRUPT naming the entry, its byte and the file size', async () => {
    const bytes = await smallImage('v2');
    setU32(bytes, 64 + 4 * 7, 7); // cluster 7 = bytes 28672..32767, the file has 24576
    const e = await refusedForWriting(bytes, /entry 7 \(host byte 28672\) points past the end of the file/, /cluster starts at byte 28672, the file has 24576 bytes/);
    assert.equal(e.data.kind, 'outside');
  });

  test('two entries naming one cluster are ECORRUPT naming the later entry as the duplicate', async () => {
    const bytes = await smallImage('v2');
    setU32(bytes, 64 + 4 * 1, u32At(bytes, 64));
    const e = await refusedForWriting(bytes, /entry 1 \(host byte 12288\) points at a cluster another entry already uses/);
    assert.equal(e.data.kind, 'duplicate');
  });

  test('a v1 entry that is not a whole number of clusters from the data area is ECORRUPT "misaligned"', async () => {
    const bytes = await smallImage('v1');
    setU32(bytes, 64, u32At(bytes, 64) + 1); // one sector off
    const e = await refusedForWriting(bytes, /entry 0 \(host byte 12800\) is not a whole number of 4096-byte clusters from the data area at byte 12288/);
    assert.equal(e.data.kind, 'misaligned');
  });

  test('several bad entries are all counted in the message', async () => {
    const bytes = await smallImage('v2');
    setU32(bytes, 64 + 4 * 10, 1);
    setU32(bytes, 64 + 4 * 11, 99);
    await refusedForWriting(bytes, /entry 10 .*\(2 bad entries in all\)/);
  });

  test('ext_off outside the file, or not on a cluster, is ECORRUPT naming ext_off, its value and the file size', async () => {
    const bytes = await smallImage('v2');
    setU32(bytes, 56, 48); // sector 48 = byte 24576 = the end of the file
    const e = await refusedForWriting(bytes, /ext_off 48 sectors does not name a whole cluster inside the file \(24576 bytes\)/);
    assert.equal(e.data.field, 'ext_off');
    setU32(bytes, 56, 0);
    setU32(bytes, 60, 1); // 2^32 sectors
    await refusedForWriting(bytes, /ext_off 4294967296 sectors/);
    setU32(bytes, 60, 0);
    setU32(bytes, 56, 25); // inside the file but not on a cluster
    await refusedForWriting(bytes, /ext_off 25 sectors/);
    setU32(bytes, 56, 24); // the cluster BAT[0] uses
    await refusedForWriting(bytes, /ext_off 24 sectors/);
  });

  test('an ext_off naming a free data cluster is accepted and that cluster is never handed out', async () => {
    const bytes = await smallImage('v2');
    const withExt = new Uint8Array(bytes.length + 4096);
    withExt.set(bytes);
    setU32(withExt, 56, 48); // the cluster appended above: magic, MD5 of the rest, no features
    new DataView(withExt.buffer).setBigUint64(bytes.length, 0xab234cef23dcea87n, true);
    withExt.set(createHash('md5').update(withExt.subarray(bytes.length + 24)).digest(), bytes.length + 8);
    const img = await PloopImage.open(new MemoryStore(withExt), { writable: true });
    try {
      assert.equal(img.bat.slotUsed(3), true);
      await img.write(3 * 4096, new Uint8Array(4096).fill(9));
      assert.equal(img.bat.lookup(3), 7 * 4096, 'the new cluster goes after the extension cluster');
    } finally {
      await img.close();
    }
  });
});
