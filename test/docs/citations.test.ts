// Every Markdown file a comment, a string or a document of the repository cites must be in the
// repository: the code's comments once pointed at design notes that lived outside it
// (format.md, engine.md, ...), which no reader of the repository could open. A citation is
// resolved against the repository root, docs/ and the citing file's own folder.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync, existsSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const SELF = fileURLToPath(import.meta.url);
const ROOT = resolve(dirname(SELF), '..', '..');
const SCANNED = ['src', 'assembly', 'web', 'bin', 'scripts', 'test', 'bench', 'docs', 'README.md'];
/** Larger files are data (fixtures, samples), not prose. */
const MAX_TEXT_BYTES = 2 << 20;
/** A path-like word ending in `.md`, not preceded by more of a path. */
const CITATION = /(?<![\w./-])((?:\.{1,2}\/|\/)?[\w.-]+(?:\/[\w.-]+)*\.md)(?![\w-])/g;

function filesUnder(path: string): string[] {
  if (!existsSync(path)) return [];
  if (!statSync(path).isDirectory()) return [path];
  return readdirSync(path, { withFileTypes: true }).flatMap((e) => (e.name === 'node_modules' ? [] : filesUnder(join(path, e.name))));
}

function readText(path: string): string | null {
  if (statSync(path).size > MAX_TEXT_BYTES) return null;
  const bytes = readFileSync(path);
  return bytes.subarray(0, 8192).includes(0) ? null : bytes.toString('utf8');
}

/** True when `target` exists inside the repository. */
function inRepo(target: string): boolean {
  const rel = relative(ROOT, target);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) && existsSync(target);
}

interface Citation {
  file: string;
  line: number;
  cited: string;
}

function citationsIn(file: string, text: string): Citation[] {
  const found: Citation[] = [];
  text.split('\n').forEach((line, i) => {
    for (const m of line.matchAll(CITATION)) {
      // A URL's path (https://host/x/README.md) is another site's file, not ours.
      const word = line.slice(0, m.index).split(/[\s'"`(<[]/).pop() ?? '';
      if (word.includes('://')) continue;
      found.push({ file, line: i + 1, cited: m[1] });
    }
  });
  return found;
}

function resolves(c: Citation): boolean {
  if (isAbsolute(c.cited)) return false;
  return [join(ROOT, c.cited), join(ROOT, 'docs', c.cited), join(dirname(c.file), c.cited)].some(inRepo);
}

test('every *.md cited under src, assembly, web, bin, scripts, test, bench, docs and in README.md exists in the repository', () => {
  // This file names missing ones on purpose (the second test).
  const files = SCANNED.flatMap((p) => filesUnder(join(ROOT, p))).filter((f) => f !== SELF);
  assert.ok(files.length > 100, `scanned ${files.length} files under ${ROOT}: the repository layout changed?`);
  const citations: Citation[] = [];
  for (const file of files) {
    const text = readText(file);
    if (text !== null) citations.push(...citationsIn(file, text));
  }
  assert.ok(citations.length >= 10, `only ${citations.length} citations found: the scan is broken`);
  const missing = citations.filter((c) => !resolves(c)).map((c) => `${relative(ROOT, c.file).split(sep).join('/')}:${c.line}: ${c.cited}`);
  assert.deepEqual(missing, [], `cited Markdown files that are not in the repository (resolved against the root, docs/ and the citing folder):\n${missing.join('\n')}`);
});

test('the citation scan sees a bare name, a relative path and an outside path, and skips URLs', () => {
  const cites = (line: string) => citationsIn(join(ROOT, 'src', 'x.ts'), line).map((c) => c.cited);
  assert.deepEqual(cites('// see format.md 1.2 and docs/engine.md, "The races"'), ['format.md', 'docs/engine.md']);
  assert.deepEqual(cites('described in `../shared/docs/engine.md` and https://github.com/a/b/blob/main/README.md'), ['../shared/docs/engine.md']);
  const at = (cited: string) => resolves({ file: join(ROOT, 'src', 'x.ts'), line: 1, cited });
  assert.equal(at('docs/format.md'), true);
  assert.equal(at('engine.md'), true, 'a bare name resolves in docs/');
  assert.equal(at('README.md'), true);
  assert.equal(at('ploop-tools.md'), false);
  assert.equal(at('../shared/docs/engine.md'), false, 'a path leaving the repository never resolves');
  assert.equal(at('/work/shared/docs/format.md'), false);
});
