// Hostile DiskDescriptor.xml (issue #8), property-based with fast-check: a valid chain of 1-5
// deltas with 0-3 lies applied — parent links forming a cycle (or a shot its own parent), a
// parent or TopGUID that names nothing, a GUID used twice, a delta file that is missing or named
// '../x' or absolute, a Blocksize or Disk_size at and past its limits, an entity bomb or external
// entity, a document past 1 MiB, deep nesting, a cut or a flipped character anywhere. The folder
// (a MemoryDirectory holding real deltas) must then open and read, or give a PloopError with a
// bounded message, within a time limit. The corpus in test/fixtures/hostile/*.xml replays with
// the outcomes recorded in cases.json.

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { withTimeout } from '../helpers/hostile-http.ts';
import {
  MemoryDirectory, MemoryStore, PloopError, createImage, openStackDir, newDescriptor, addSnapshot, serializeDescriptor,
} from '../../src/index.ts';

const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/hostile');
const C = 32 << 10;
const SIZE = 256 << 10;
const CASE_TIMEOUT_MS = 8000;
const MAX_MESSAGE = 2000;
const RUNS = Number(process.env.HOSTILE_RUNS ?? 400);

const tried = { generated: 0, opened: 0, refusedAtParse: 0, refusedAtOpen: 0, corpus: 0 };
let delta: Uint8Array | null = null;

/** One empty delta's bytes (every delta of a generated chain is a copy). */
async function deltaBytes(): Promise<Uint8Array> {
  if (!delta) {
    const store = new MemoryStore();
    await createImage(store, { size: SIZE, clusterSize: C });
    delta = store.bytes().slice();
  }
  return delta;
}

type Lie =
  | { kind: 'cycle' } | { kind: 'self-parent'; at: number } | { kind: 'unknown-parent'; at: number } | { kind: 'unknown-top' }
  | { kind: 'duplicate-guid' } | { kind: 'missing-file'; at: number } | { kind: 'file-name'; at: number; name: string }
  | { kind: 'blocksize'; value: string } | { kind: 'disk-size'; value: string } | { kind: 'entity-bomb' } | { kind: 'external-entity' }
  | { kind: 'huge' } | { kind: 'deep'; depth: number } | { kind: 'cut'; at: number } | { kind: 'flip'; at: number; char: string };

const lieArb: fc.Arbitrary<Lie> = fc.oneof(
  fc.constant({ kind: 'cycle' as const }),
  fc.record({ kind: fc.constant('self-parent' as const), at: fc.nat(4) }),
  fc.record({ kind: fc.constant('unknown-parent' as const), at: fc.nat(4) }),
  fc.constant({ kind: 'unknown-top' as const }),
  fc.constant({ kind: 'duplicate-guid' as const }),
  fc.record({ kind: fc.constant('missing-file' as const), at: fc.nat(4) }),
  fc.record({ kind: fc.constant('file-name' as const), at: fc.nat(4), name: fc.constantFrom('../x.hds', '/etc/passwd', '', ' ', 'a/../../b', 'root.hds\u0000x', '&amp;.hds', 'CON') }),
  fc.record({ kind: fc.constant('blocksize' as const), value: fc.constantFrom('0', '1', '63', '65', '131072', '262144', '4294967296', '-64', '6.4e1', '') }),
  fc.record({ kind: fc.constant('disk-size' as const), value: fc.constantFrom('0', '1', '513', '9007199254740992', '99999999999999999999', 'NaN') }),
  fc.constant({ kind: 'entity-bomb' as const }),
  fc.constant({ kind: 'external-entity' as const }),
  fc.constant({ kind: 'huge' as const }),
  fc.record({ kind: fc.constant('deep' as const), depth: fc.constantFrom(40, 1000, 100_000) }),
  fc.record({ kind: fc.constant('cut' as const), at: fc.double({ min: 0, max: 1, noNaN: true }) }),
  fc.record({ kind: fc.constant('flip' as const), at: fc.double({ min: 0, max: 1, noNaN: true }), char: fc.constantFrom('<', '>', '&', '"', '/', '{', '}', '0', 'x', '\u0001', '\ud800') }),
);

const GUID = /\{[0-9a-f-]{36}\}/gi;

/** A folder for `deltas` deltas with `lies` applied to its descriptor (and files). */
async function hostileFolder(deltas: number, lies: Lie[]): Promise<{ dir: MemoryDirectory; text: string }> {
  let d = newDescriptor({ sizeSectors: SIZE / 512, blocksizeSectors: C / 512, file: 'root.hds' });
  for (let i = 1; i < deltas; i++) d = addSnapshot(d, { newFile: `root.hds.${i}` });
  let text = serializeDescriptor(d);
  const files = new Set(Array.from({ length: deltas }, (_, i) => (i === 0 ? 'root.hds' : `root.hds.${i}`)));
  const guids = [...new Set(text.match(GUID) ?? [])].filter((g) => !/^\{0+-/.test(g));
  const shots = () => [...text.matchAll(/<Shot>\s*<GUID>(\{[^}]*\})<\/GUID>\s*<ParentGUID>(\{[^}]*\})<\/ParentGUID>/g)];
  for (const lie of lies) {
    switch (lie.kind) {
      case 'cycle': {
        // The base's parent becomes the top: every chain loops.
        const s = shots();
        if (s.length > 0) text = text.replace(s[0][0], s[0][0].replace(`<ParentGUID>${s[0][2]}`, `<ParentGUID>${s[s.length - 1][1]}`));
        break;
      }
      case 'self-parent': {
        const s = shots();
        const m = s[lie.at % s.length];
        if (m) text = text.replace(m[0], m[0].replace(`<ParentGUID>${m[2]}`, `<ParentGUID>${m[1]}`));
        break;
      }
      case 'unknown-parent': {
        const s = shots();
        const m = s[lie.at % s.length];
        if (m) text = text.replace(m[0], m[0].replace(`<ParentGUID>${m[2]}`, '<ParentGUID>{12345678-1234-4234-8234-123456789abc}'));
        break;
      }
      case 'unknown-top':
        text = text.replace(/<TopGUID>[^<]*<\/TopGUID>/, '<TopGUID>{87654321-1234-4234-8234-123456789abc}</TopGUID>');
        break;
      case 'duplicate-guid':
        if (guids.length > 1) text = text.split(guids[1]).join(guids[0]);
        break;
      case 'missing-file':
        files.delete(lie.at % deltas === 0 ? 'root.hds' : `root.hds.${lie.at % deltas}`);
        break;
      case 'file-name': {
        const name = lie.at % deltas === 0 ? 'root.hds' : `root.hds.${lie.at % deltas}`;
        text = text.replace(`<File>${name}</File>`, `<File>${lie.name}</File>`);
        break;
      }
      case 'blocksize':
        text = text.replace(/<Blocksize>\d+<\/Blocksize>/, `<Blocksize>${lie.value}</Blocksize>`);
        break;
      case 'disk-size':
        text = text.replace(/<Disk_size>\d+<\/Disk_size>/, `<Disk_size>${lie.value}</Disk_size>`);
        break;
      case 'entity-bomb': {
        const levels = Array.from({ length: 10 }, (_, i) => `<!ENTITY l${i + 1} "${`&l${i};`.repeat(10)}">`).join('');
        text = text.replace('<?xml version="1.0"?>', `<?xml version="1.0"?><!DOCTYPE Virtuozzo_disk_image [<!ENTITY l0 "ha">${levels}]>`).replace('<File>root.hds</File>', '<File>&l10;</File>');
        break;
      }
      case 'external-entity':
        text = text.replace('<?xml version="1.0"?>', '<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>').replace('<File>root.hds</File>', '<File>&x;</File>');
        break;
      case 'huge':
        text = text.replace('</Virtuozzo_disk_image>', `<!--${'x'.repeat((1 << 20) + 10)}--></Virtuozzo_disk_image>`);
        break;
      case 'deep':
        text = text.replace('<Padding>0</Padding>', `${'<p>'.repeat(lie.depth)}${'</p>'.repeat(lie.depth)}<Padding>0</Padding>`);
        break;
      case 'cut':
        text = text.slice(0, Math.floor(text.length * lie.at));
        break;
      case 'flip': {
        const at = Math.floor(text.length * lie.at);
        text = text.slice(0, at) + lie.char + text.slice(at + 1);
        break;
      }
    }
  }
  const dir = new MemoryDirectory('hostile');
  for (const f of files) dir.files.set(f, new MemoryStore((await deltaBytes()).slice()));
  dir.texts.set('DiskDescriptor.xml', text);
  return { dir, text };
}


/** Open the folder: an image that reads all zeros (its deltas are empty), or a PloopError with a bounded message. */
async function judgeFolder(dir: MemoryDirectory, what: string): Promise<{ outcome: 'opened' } | { outcome: 'refused'; error: PloopError }> {
  try {
    const image = await openStackDir(dir, { onWarning: () => {} });
    try {
      const all = await image.read(0, image.size);
      assert.equal(all.findIndex((b) => b !== 0), -1, `${what}: an empty stack reads zeros`);
    } finally {
      await image.close();
    }
    return { outcome: 'opened' };
  } catch (e) {
    if (e instanceof assert.AssertionError) throw e;
    if (!(e instanceof PloopError)) throw new Error(`${what}: not a PloopError: ${e instanceof Error ? `${e.name}: ${e.message}` : String(e)}`, { cause: e });
    assert.ok(e.message.length <= MAX_MESSAGE, `${what}: a ${e.message.length}-character message: ${e.message.slice(0, 200)}…`);
    return { outcome: 'refused', error: e };
  }
}

test(`${RUNS} hostile DiskDescriptor.xml folders (cycles, missing files, entity expansion, huge, deep, cut, flipped): they open or give a bounded PloopError, never hang`, { timeout: 150_000 }, async (t) => {
  await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 5 }), fc.array(lieArb, { maxLength: 3 }), async (deltas, lies) => {
    const { dir } = await hostileFolder(deltas, lies);
    const what = `${deltas} deltas, lies ${JSON.stringify(lies)}`;
    const r = await withTimeout(judgeFolder(dir, what), CASE_TIMEOUT_MS, what);
    tried.generated++;
    if (r.outcome === 'opened') tried.opened++;
    else if (/DiskDescriptor|<|XML|descriptor/.test(r.error.message)) tried.refusedAtParse++;
    else tried.refusedAtOpen++;
    // A lie that breaks the chain is never accepted.
    if (lies.some((l) => ['cycle', 'self-parent', 'unknown-top', 'entity-bomb', 'external-entity', 'huge'].includes(l.kind))) {
      assert.equal(r.outcome, 'refused', `${what}: opened`);
    }
    if (lies.some((l) => l.kind === 'missing-file' && (l.at % deltas === deltas - 1 || deltas === 1)) && lies.length === 1) {
      assert.equal(r.outcome, 'refused', `${what}: opened without its top delta`);
    }
  }), { numRuns: RUNS, seed: 0xdd1, endOnFailure: true });
  assert.ok(tried.opened > 10 && tried.refusedAtParse > 50, `a mix of outcomes: ${JSON.stringify(tried)}`);
  t.diagnostic(`hostile descriptors tried: ${tried.generated} (${tried.opened} opened, ${tried.refusedAtParse} refused reading the descriptor, ${tried.refusedAtOpen} refused opening the deltas)`);
});

interface CorpusCase {
  file: string;
  exercises: string;
  expect: 'opens' | { code: string; message: string };
  /** Delta files the folder holds (default: none). */
  deltas?: string[];
}

test('the DiskDescriptor.xml corpus (test/fixtures/hostile/*.xml) replays with the recorded outcomes', async (t) => {
  const cases = (JSON.parse(await readFile(join(FIXTURES, 'cases.json'), 'utf8')) as CorpusCase[]).filter((c) => c.file.endsWith('.xml'));
  for (const c of cases) {
    const dir = new MemoryDirectory('corpus');
    for (const f of c.deltas ?? []) dir.files.set(f, new MemoryStore((await deltaBytes()).slice()));
    dir.texts.set('DiskDescriptor.xml', await readFile(join(FIXTURES, c.file), 'utf8'));
    const what = `${c.file} (${c.exercises})`;
    const started = performance.now();
    const r = await withTimeout(judgeFolder(dir, what), CASE_TIMEOUT_MS, what);
    if (c.expect === 'opens') assert.equal(r.outcome, 'opened', `${what}: expected to open`);
    else {
      assert.equal(r.outcome, 'refused', `${what}: expected a refusal`);
      if (r.outcome === 'refused') {
        assert.equal(r.error.code, c.expect.code, `${what}: ${r.error.message}`);
        assert.match(r.error.message, new RegExp(c.expect.message), what);
      }
    }
    assert.ok(performance.now() - started < 3000, `${what}: took ${performance.now() - started} ms`);
    tried.corpus++;
  }
  assert.ok(cases.length >= 8, `corpus has ${cases.length} descriptor cases`);
  t.diagnostic(`corpus descriptor cases replayed: ${cases.length}`);
});

after(() => {
  console.log(`hostile descriptors: ${tried.generated + tried.corpus} cases tried (${tried.generated} generated, ${tried.corpus} corpus)`);
});
