// SPDX-License-Identifier: MIT
// Writes the TypeScript side of the WebAssembly interface (src/core/wasm-interface.generated.ts)
// from what assembly/index.ts exports, so that the context layout, the md bits, the status codes,
// the record layouts and the exports' signatures are written once, in assembly/. Run by
// `npm run build` before asc and tsc; usage: node --import tsx scripts/wasm-interface.ts
//
// It reads the sources with TypeScript's parser (AssemblyScript's syntax is TypeScript's) and
// evaluates the constants' initializers itself: they are integer literals, operators and other
// constants, and anything else is refused with the file and the name, never guessed.
// (`asc --bindings raw` was measured too: it gives the signatures, but constants only as globals
// whose values need a compiled module, and it writes a wrapper next to the .wasm in dist/.)

import ts from 'typescript';
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The module whose exports are the interface (paths here are relative to the repository). */
export const INTERFACE_ENTRY = 'assembly/index.ts';
export const GENERATED_FILE = 'src/core/wasm-interface.generated.ts';

/** Reads a source file by its repository-relative path (tests pass edited sources in). */
export type ReadSource = (path: string) => string;

const ROOT = new URL('../', import.meta.url);
export const readFromRepository: ReadSource = (path) => readFileSync(new URL(path, ROOT), 'utf8');

/** How each AssemblyScript integer type wraps a value (the constant's declared type decides). */
const INTEGER_WRAP: Record<string, (v: number) => number> = {
  i8: (v) => (v << 24) >> 24,
  u8: (v) => v & 0xff,
  i16: (v) => (v << 16) >> 16,
  u16: (v) => v & 0xffff,
  i32: (v) => v | 0,
  isize: (v) => v | 0,
  u32: (v) => v >>> 0,
  usize: (v) => v >>> 0,
  bool: (v) => (v ? 1 : 0),
};
/** Types a raw export passes as a JS number (wasm32: usize is an i32). */
const NUMBER_TYPES = new Set([...Object.keys(INTEGER_WRAP), 'f32', 'f64']);
const BIGINT_TYPES = new Set(['i64', 'u64']);

interface ConstantExport {
  kind: 'constant';
  name: string;
  type: string;
  value: number;
  doc: string[];
  file: string;
}
interface FunctionExport {
  kind: 'function';
  name: string;
  params: Array<{ name: string; type: string }>;
  returns: string;
  doc: string[];
  file: string;
}
type InterfaceExport = ConstantExport | FunctionExport;

class Sources {
  readonly #read: ReadSource;
  readonly #files = new Map<string, ts.SourceFile>();
  readonly #constants = new Map<string, number>();
  constructor(read: ReadSource) {
    this.#read = read;
  }

  file(path: string): ts.SourceFile {
    let sf = this.#files.get(path);
    if (!sf) {
      sf = ts.createSourceFile(path, this.#read(path), ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
      this.#files.set(path, sf);
    }
    return sf;
  }

  /** The declaration `name` refers to in module `path`: its own, or followed through imports and re-exports. */
  resolve(path: string, name: string, seen = new Set<string>()): { path: string; node: ts.VariableDeclaration | ts.FunctionDeclaration } {
    const key = `${path}:${name}`;
    if (seen.has(key)) throw new Error(`${path}: ${name} refers to itself`);
    seen.add(key);
    for (const statement of this.file(path).statements) {
      if (ts.isFunctionDeclaration(statement) && statement.name?.text === name) return { path, node: statement };
      if (ts.isVariableStatement(statement)) {
        for (const d of statement.declarationList.declarations) if (ts.isIdentifier(d.name) && d.name.text === name) return { path, node: d };
      }
      const link = namedLink(statement);
      const e = link?.elements.find((element) => element.name.text === name);
      if (link && e) return this.resolve(relativeModule(path, link.from), (e.propertyName ?? e.name).text, seen);
    }
    throw new Error(`${path}: no declaration of ${name}`);
  }

  /** The value of constant `name` as seen from module `path`, wrapped to its declared type. */
  constant(path: string, name: string): number {
    const { path: at, node } = this.resolve(path, name);
    const key = `${at}:${name}`;
    const known = this.#constants.get(key);
    if (known !== undefined) return known;
    if (!ts.isVariableDeclaration(node) || !(node.parent.flags & ts.NodeFlags.Const) || !node.initializer || !node.type) {
      throw new Error(`${at}: ${name} is not a constant with a type and a value`);
    }
    const type = node.type.getText();
    const raw = this.#evaluate(at, name, node.initializer);
    let value: number;
    if (type === 'f32' || type === 'f64') value = type === 'f32' ? Math.fround(raw) : raw;
    else if (INTEGER_WRAP[type] && Number.isSafeInteger(raw)) value = INTEGER_WRAP[type](raw);
    else throw new Error(`${at}: ${name} has type ${type} and value ${raw}; the interface holds 32-bit integers and floats`);
    this.#constants.set(key, value);
    return value;
  }

  #evaluate(path: string, name: string, e: ts.Expression): number {
    if (ts.isNumericLiteral(e)) return Number(e.text);
    if (ts.isParenthesizedExpression(e) || ts.isTypeAssertionExpression(e) || ts.isAsExpression(e)) return this.#evaluate(path, name, e.expression);
    if (ts.isIdentifier(e)) return this.constant(path, e.text);
    if (e.kind === ts.SyntaxKind.TrueKeyword) return 1;
    if (e.kind === ts.SyntaxKind.FalseKeyword) return 0;
    if (ts.isPrefixUnaryExpression(e)) {
      const v = this.#evaluate(path, name, e.operand);
      if (e.operator === ts.SyntaxKind.MinusToken) return -v;
      if (e.operator === ts.SyntaxKind.PlusToken) return v;
      if (e.operator === ts.SyntaxKind.TildeToken) return ~v;
    }
    if (ts.isBinaryExpression(e)) {
      const a = this.#evaluate(path, name, e.left);
      const b = this.#evaluate(path, name, e.right);
      switch (e.operatorToken.kind) {
        case ts.SyntaxKind.PlusToken: return a + b;
        case ts.SyntaxKind.MinusToken: return a - b;
        case ts.SyntaxKind.AsteriskToken: return a * b;
        case ts.SyntaxKind.LessThanLessThanToken: return a << b;
        case ts.SyntaxKind.GreaterThanGreaterThanToken: return a >> b;
        case ts.SyntaxKind.GreaterThanGreaterThanGreaterThanToken: return a >>> b;
        case ts.SyntaxKind.BarToken: return a | b;
        case ts.SyntaxKind.AmpersandToken: return a & b;
        case ts.SyntaxKind.CaretToken: return a ^ b;
      }
    }
    throw new Error(`${path}: ${name}: cannot evaluate \`${e.getText()}\` (literals, operators and other constants only)`);
  }
}

/** The names an `import { … } from "…"` or `export { … } from "…"` brings over, and from where. */
function namedLink(statement: ts.Statement): { from: string; elements: readonly (ts.ImportSpecifier | ts.ExportSpecifier)[] } | null {
  if (ts.isImportDeclaration(statement) && ts.isStringLiteral(statement.moduleSpecifier)) {
    const bindings = statement.importClause?.namedBindings;
    if (bindings && ts.isNamedImports(bindings)) return { from: statement.moduleSpecifier.text, elements: bindings.elements };
  }
  if (ts.isExportDeclaration(statement) && statement.moduleSpecifier && ts.isStringLiteral(statement.moduleSpecifier)) {
    if (statement.exportClause && ts.isNamedExports(statement.exportClause)) return { from: statement.moduleSpecifier.text, elements: statement.exportClause.elements };
  }
  return null;
}

/** `./bat` from `assembly/index.ts` is `assembly/bat.ts`. */
function relativeModule(from: string, specifier: string): string {
  if (!specifier.startsWith('.')) throw new Error(`${from}: the interface comes from assembly/ only, not from "${specifier}"`);
  const url = new URL(specifier.endsWith('.ts') ? specifier : `${specifier}.ts`, new URL(from, 'file:///'));
  return url.pathname.slice(1);
}

/** The /** … *\/ comment right before a declaration, as lines without the comment markers. */
function docOf(node: ts.Node): string[] {
  const holder = ts.isVariableDeclaration(node) ? node.parent.parent : node;
  const text = holder.getSourceFile().text;
  const ranges = ts.getLeadingCommentRanges(text, holder.pos) ?? [];
  const last = ranges.at(-1);
  if (!last || !text.startsWith('/**', last.pos)) return [];
  return text
    .slice(last.pos + 3, last.end - 2)
    .split('\n')
    .map((line) => line.replace(/^\s*\*? ?/, '').trimEnd())
    .filter((line, i, all) => line !== '' || (i > 0 && i < all.length - 1));
}

function tsType(where: string, type: string): string {
  if (NUMBER_TYPES.has(type)) return 'number';
  if (BIGINT_TYPES.has(type)) return 'bigint';
  throw new Error(`${where}: type ${type} cannot cross the raw interface (numbers only)`);
}

/** Every name assembly/index.ts exports, in its order, with what it is. */
export function readInterface(read: ReadSource = readFromRepository): InterfaceExport[] {
  const sources = new Sources(read);
  const names: string[] = [];
  for (const statement of sources.file(INTERFACE_ENTRY).statements) {
    const exported = ts.canHaveModifiers(statement) && ts.getModifiers(statement)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword);
    if (ts.isExportDeclaration(statement) && statement.exportClause && ts.isNamedExports(statement.exportClause)) {
      for (const e of statement.exportClause.elements) names.push(e.name.text);
    } else if (exported && ts.isFunctionDeclaration(statement) && statement.name) {
      names.push(statement.name.text);
    } else if (exported && ts.isVariableStatement(statement)) {
      for (const d of statement.declarationList.declarations) names.push(d.name.getText());
    }
  }
  return names.map((name): InterfaceExport => {
    const { path, node } = sources.resolve(INTERFACE_ENTRY, name);
    if (ts.isVariableDeclaration(node)) {
      return { kind: 'constant', name, type: node.type?.getText() ?? '', value: sources.constant(INTERFACE_ENTRY, name), doc: docOf(node), file: path };
    }
    const params = node.parameters.map((p) => {
      if (!p.type || p.initializer || p.questionToken || p.dotDotDotToken) throw new Error(`${path}: ${name}(${p.name.getText()}): every parameter needs a type and no default`);
      return { name: p.name.getText(), type: p.type.getText() };
    });
    if (!node.type) throw new Error(`${path}: ${name} needs a return type`);
    return { kind: 'function', name, params, returns: node.type.getText(), doc: docOf(node), file: path };
  });
}

function comment(lines: string[], indent: string): string {
  if (lines.length === 0) return '';
  if (lines.length === 1) return `${indent}/** ${lines[0]} */\n`;
  return `${indent}/**\n${lines.map((l) => `${indent} *${l ? ` ${l}` : ''}\n`).join('')}${indent} */\n`;
}

/** The text of src/core/wasm-interface.generated.ts for the sources `read` gives. */
export function generateWasmInterface(read: ReadSource = readFromRepository): string {
  const items = readInterface(read);
  const constants = items.filter((i): i is ConstantExport => i.kind === 'constant');
  const functions = items.filter((i): i is FunctionExport => i.kind === 'function');
  let out = `// Generated by scripts/wasm-interface.ts from ${INTERFACE_ENTRY} (npm run build writes it): do not
// edit. Change assembly/ and rebuild; test/assembly/interface.test.ts fails while the two differ.
// size: one declaration per export of ${INTERFACE_ENTRY}, with its doc comment; nobody edits it.

`;
  for (const c of constants) out += `${comment([...c.doc, `(${c.file})`], '')}export const ${c.name} = ${c.value};\n`;
  out += `
/** The constants above by name: a loaded module's exported globals must hold these values. */
export const CORE_CONSTANTS = {
${constants.map((c) => `  ${c.name},\n`).join('')}} as const;

/** The functions ${INTERFACE_ENTRY} exports, as the raw instance exports them (no bindings). */
export interface CoreExports {
`;
  for (const f of functions) {
    const asSignature = `${f.name}(${f.params.map((p) => `${p.name}: ${p.type}`).join(', ')}): ${f.returns}`;
    const where = `${f.file}: ${f.name}`;
    out += comment([...f.doc, `(${f.file}: ${asSignature})`], '  ');
    out += `  ${f.name}(${f.params.map((p) => `${p.name}: ${tsType(`${where}(${p.name})`, p.type)}`).join(', ')}): ${tsType(where, f.returns)};\n`;
  }
  out += `}

/** Parameters of each exported function: a loaded module's functions must take as many. */
export const CORE_FUNCTION_ARITY: { readonly [K in keyof CoreExports]: number } = {
${functions.map((f) => `  ${f.name}: ${f.params.length},\n`).join('')}};
`;
  return out;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const text = generateWasmInterface();
  const target = new URL(GENERATED_FILE, ROOT);
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    // No file yet (it was deleted): write it.
  }
  // Written only when it changed, so that tsc and editors do not see a new file at every build.
  if (current !== text) {
    writeFileSync(target, text);
    console.log(`wrote ${GENERATED_FILE}`);
  }
}
