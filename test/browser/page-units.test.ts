// The page's pure helpers, in Node: offsets users type, hex dump lines, the BAT picture's layout
// (cells shrink, then aggregate) and the per-cluster levels built from extents.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseOffset, hexDump, formatBytes } from '../../web/demo/hex.ts';
import { layoutBat, clusterLevels, clusterAt, HOLE } from '../../web/demo/bat-canvas.ts';

test('offsets: decimal, hex, units; anything else is refused naming the field and the value', () => {
  assert.equal(parseOffset('4096', 'x'), 4096);
  assert.equal(parseOffset(' 0x1F000 ', 'x'), 0x1f000);
  assert.equal(parseOffset('64k', 'x'), 65536);
  assert.equal(parseOffset('1MiB', 'x'), 1 << 20);
  assert.equal(parseOffset('1.5M', 'x'), 1.5 * (1 << 20));
  assert.equal(parseOffset('2T', 'x'), 2 * 2 ** 40);
  assert.throws(() => parseOffset('-1', 'pattern offset'), /^PloopError: pattern offset: "-1" is not a byte count \(expected e\.g\. 4096, 0x1000, 64k or 1M\)$/);
  assert.throws(() => parseOffset('0.3k', 'length'), /length: "0\.3k" is not a whole number of bytes/);
  assert.throws(() => parseOffset('99999999999999999999', 'length'), /not a whole number of bytes/);
});

test('hex dump: offset, two groups of eight bytes, printable ASCII', () => {
  const bytes = new Uint8Array(20);
  bytes.set(new TextEncoder().encode('Hello, ploop!'), 0);
  bytes[19] = 0xff;
  assert.equal(hexDump(bytes, 0x1000),
    '00001000  48 65 6c 6c 6f 2c 20 70  6c 6f 6f 70 21 00 00 00  |Hello, ploop!...|\n' +
    '00001010  00 00 00 ff                                       |....|');
  assert.equal(formatBytes(33554432), '32 MiB');
  assert.equal(formatBytes(1536), '1.50 KiB');
  assert.equal(formatBytes(100), '100 B');
});

test('BAT layout: big cells for few clusters, one pixel each for many, aggregation past the pixels', () => {
  assert.deepEqual(layoutBat(64, 1000, 300), { cellPx: 24, columns: 41, rows: 2, clustersPerCell: 1 });
  const mid = layoutBat(100_000, 1000, 300);
  assert.equal(mid.clustersPerCell, 1);
  assert.equal(mid.cellPx, 1);
  assert.ok(mid.rows <= 300);
  const huge = layoutBat(16_000_000, 1000, 300);
  assert.equal(huge.clustersPerCell, Math.ceil(16_000_000 / 300_000));
  assert.ok(huge.rows * huge.columns * huge.clustersPerCell >= 16_000_000 && huge.rows <= 300);
  assert.equal(clusterAt(huge, 16_000_000, 5, 0), 5 * huge.clustersPerCell);
  assert.equal(clusterAt(huge, 16_000_000, 5, 10_000), -1);
});

test('cluster levels from extents: holes stay HOLE, mapped runs take their level', () => {
  const levels = clusterLevels([
    { offset: 0, length: 2 << 20, hostOffset: 1 << 20, level: 0, firstClusterIndex: 0 },
    { offset: 2 << 20, length: 3 << 20, hostOffset: -1, level: HOLE, firstClusterIndex: 2 },
    { offset: 5 << 20, length: 1 << 20, hostOffset: 1 << 20, level: 1, firstClusterIndex: 5 },
  ], 1 << 20, 8);
  assert.deepEqual([...levels], [0, 0, HOLE, HOLE, HOLE, 1, HOLE, HOLE]);
});
