// The tree's size rules (issue #17): no file in src/ over 450 lines and no function over 80,
// unless a comment says why — a line with "size:" in the file's first comment block for a file,
// or in the comment right before a function for a function.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const MAX_FILE_LINES = 450;
const MAX_FUNCTION_LINES = 80;

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sources(path, out);
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const files = [...sources(join(ROOT, 'src')), ...sources(join(ROOT, 'web'))];

test(`no file in src/ or web/ is over ${MAX_FILE_LINES} lines unless its header comment says why ("size:")`, () => {
  const over = files.flatMap((path) => {
    const text = readFileSync(path, 'utf8');
    const lines = text.split('\n').length;
    const header = text.slice(0, text.search(/^(import|export|const|function|class)/m));
    return lines > MAX_FILE_LINES && !/size:/.test(header) ? [`${relative(ROOT, path)}: ${lines} lines`] : [];
  });
  assert.deepEqual(over, []);
});

test(`no function in src/ or web/ is over ${MAX_FUNCTION_LINES} lines unless the comment before it says why ("size:")`, () => {
  const over: string[] = [];
  for (const path of files) {
    const text = readFileSync(path, 'utf8');
    const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true);
    const visit = (node: ts.Node): void => {
      if (ts.isFunctionLike(node) && 'body' in node && node.body) {
        const first = sf.getLineAndCharacterOfPosition(node.getStart()).line;
        const last = sf.getLineAndCharacterOfPosition(node.end).line;
        const comments = (ts.getLeadingCommentRanges(text, node.getFullStart()) ?? []).map((c) => text.slice(c.pos, c.end)).join('\n');
        if (last - first + 1 > MAX_FUNCTION_LINES && !/size:/.test(comments)) {
          over.push(`${relative(ROOT, path)}:${first + 1} ${(node as ts.FunctionDeclaration).name?.getText(sf) ?? '(anonymous)'}: ${last - first + 1} lines`);
        }
      }
      ts.forEachChild(node, visit);
    };
    visit(sf);
  }
  assert.deepEqual(over, []);
});
