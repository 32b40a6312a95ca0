// The WebAssembly interface has one source, assembly/: the generated TypeScript side must be what
// the generator makes from it now, and the compiled module must export exactly those constants
// and functions. A module compiled from other sources is refused by name.

import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import asc from 'assemblyscript/asc';
import { generateWasmInterface, readFromRepository, GENERATED_FILE, type ReadSource } from '../../scripts/wasm-interface.ts';
import { getCore, interfaceMismatches, WasmCore } from '../../src/core/wasm.ts';
import { CORE_CONSTANTS, CORE_FUNCTION_ARITY, CTX_TOP } from '../../src/core/wasm-interface.generated.ts';
import { PloopError } from '../../src/errors.ts';

const ROOT = new URL('../../', import.meta.url);

/** The repository's sources with `path`'s text passed through `edit`. */
function edited(path: string, edit: (text: string) => string): ReadSource {
  return (p) => (p === path ? edit(readFromRepository(p)) : readFromRepository(p));
}

/** One text replacement that must apply (so that an edit that no longer matches fails loudly). */
function replaceOnce(text: string, from: string, to: string): string {
  assert.ok(text.includes(from), `the source still contains ${JSON.stringify(from)}`);
  return text.replace(from, to);
}

describe('the generated TypeScript side', () => {
  test(`${GENERATED_FILE} is what scripts/wasm-interface.ts makes from assembly/ now (run npm run build)`, () => {
    assert.equal(readFileSync(new URL(GENERATED_FILE, ROOT), 'utf8'), generateWasmInterface());
  });

  test('an edit in assembly/ reaches the generated constants, the exports type and the parameter counts', () => {
    const current = generateWasmInterface();
    const moved = generateWasmInterface(edited('assembly/layout.ts', (t) => replaceOnce(t, 'CTX_TOP: u32 = 20;', 'CTX_TOP: u32 = 5 * 24;')));
    assert.notEqual(moved, current);
    assert.match(moved, /^export const CTX_TOP = 120;$/m);
    const widened = generateWasmInterface(edited('assembly/bat.ts', (t) => replaceOnce(t, 'out: usize, maxExtents: i32): i32 {', 'out: usize, maxExtents: i32, flags: u32): i32 {')));
    assert.match(widened, /^ {2}mapRange\(ctx: number, offset: number, length: number, out: number, maxExtents: number, flags: number\): number;$/m);
    assert.match(widened, /^ {2}mapRange: 6,$/m);
    const narrow = generateWasmInterface(edited('assembly/layout.ts', (t) => replaceOnce(t, 'LEVEL_NONE: u8 = 0xff;', 'LEVEL_NONE: u8 = 0x1ff;')));
    assert.match(narrow, /^export const LEVEL_NONE = 255;$/m, 'a value is wrapped to its declared type, as asc does');
  });

  test('the generator refuses what it cannot carry, naming the file and the export', () => {
    assert.throws(
      () => generateWasmInterface(edited('assembly/layout.ts', (t) => replaceOnce(t, 'CTX_TOP: u32 = 20;', 'CTX_TOP: u32 = <u32>Math.floor(20.5);'))),
      /assembly\/layout\.ts: CTX_TOP: cannot evaluate `Math\.floor\(20\.5\)`/,
    );
    assert.throws(
      () => generateWasmInterface(edited('assembly/status.ts', (t) => replaceOnce(t, 'STATUS_OK: i32 = 0;', 'STATUS_OK: i64 = 0;'))),
      /assembly\/status\.ts: STATUS_OK has type i64/,
    );
    assert.throws(
      () => generateWasmInterface(edited('assembly/md.ts', (t) => replaceOnce(t, 'mdStatus(ctx: usize, page: u32): i32', 'mdStatus(ctx: usize, page: string): i32'))),
      /assembly\/md\.ts: mdStatus\(page\): type string cannot cross the raw interface/,
    );
    assert.throws(
      () => generateWasmInterface(edited('assembly/index.ts', (t) => `${t}\nexport { nowhere } from "./md";\n`)),
      /assembly\/md\.ts: no declaration of nowhere/,
    );
  });
});

describe('the compiled module against the generated side', () => {
  test('ploop.wasm exports exactly the generated constants and functions, with their values and parameter counts', async () => {
    const core = await getCore();
    assert.deepEqual(interfaceMismatches(core.exports as unknown as WebAssembly.Exports), []);
    const exported = WebAssembly.Module.exports(core.module);
    const expected = [
      // asc exports the memory it imports as well; WasmCore hands it over on instantiation.
      { name: 'memory', kind: 'memory' },
      ...Object.keys(CORE_CONSTANTS).map((name) => ({ name, kind: 'global' })),
      ...Object.keys(CORE_FUNCTION_ARITY).map((name) => ({ name, kind: 'function' })),
    ];
    const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
    assert.deepEqual([...exported].sort(byName), expected.sort(byName));
  });

  test('interfaceMismatches names every difference', async () => {
    const core = await getCore();
    const exports: WebAssembly.Exports = { ...(core.exports as unknown as WebAssembly.Exports) };
    exports.CTX_TOP = new WebAssembly.Global({ value: 'i32', mutable: false }, 99);
    delete exports.MD_DIRTY;
    delete exports.mapRange;
    exports.lookupCluster = (ctx: number) => ctx;
    assert.deepEqual(interfaceMismatches(exports), [
      `CTX_TOP is 99 in the module, ${CTX_TOP} here`,
      'MD_DIRTY is missing in the module, 2 here',
      'function lookupCluster takes 1 parameters in the module, 2 here',
      'function mapRange is missing in the module',
    ]);
  });

  test('a module compiled from edited assembly/ sources is refused with the field that differs', async () => {
    let binary: Uint8Array | null = null;
    const { error, stderr } = await asc.main(['assembly/index.ts', '--target', 'release', '--outFile', 'edited.wasm'], {
      readFile(name, baseDir) {
        const path = join(baseDir, name);
        if (path === 'assembly/layout.ts') return replaceOnce(readFromRepository(path), 'CTX_TOP: u32 = 20;', 'CTX_TOP: u32 = 120;');
        try {
          return readFileSync(new URL(path, ROOT), 'utf8');
        } catch {
          return null;
        }
      },
      writeFile(name, contents) {
        if (name === 'edited.wasm' && typeof contents !== 'string') binary = contents;
      },
      listFiles: () => [],
    });
    assert.equal(error, null, String(stderr));
    assert.ok(binary, 'asc wrote the module');
    const module = new WebAssembly.Module(binary);
    await assert.rejects(WasmCore.instantiate(module), (e: unknown) => {
      assert.ok(e instanceof PloopError);
      assert.equal(e.code, 'EINVAL');
      assert.match(e.message, /^ploop\.wasm does not match this library \(CTX_TOP is 120 in the module, 20 here\); rebuild with npm run build$/);
      return true;
    });
  });
});
