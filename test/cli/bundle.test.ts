// The bundled CLI (scripts/build-cli.mjs, what dist/bin/ploop-wasm.js runs after npm run build),
// built here into a temp folder from the sources in the tree: every command's chunk loads, a
// start loads only the node: built-ins of the command that runs, convert and the runner worker
// entry work, and bin/ploop-wasm uses the bundle only when it is as new as itself.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFile, mkdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeTempDir, withTempDir } from '../helpers/tmp.ts';
import { qemuCreate, qemuIo, ioWrite, qemuConvertToRaw } from '../helpers/qemu.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** <tmp>/bin/cli/ploop-wasm.js with ploop.wasm two levels up, as in dist/. */
async function buildBundle(tmp: string): Promise<string> {
  const out = join(tmp, 'bin/cli');
  const b = spawnSync(process.execPath, [join(ROOT, 'scripts/build-cli.mjs'), out], { encoding: 'utf8' });
  assert.equal(b.status, 0, `build-cli: ${b.stderr}`);
  await copyFile(join(ROOT, 'dist/ploop.wasm'), join(tmp, 'ploop.wasm'));
  return join(out, 'ploop-wasm.js');
}

/** Run node with `args`; with `builtins`, also report which node: built-ins the process loaded. */
function node(args: string[], builtins = false) {
  const hook = 'data:text/javascript,process.on("exit",()=>process.stderr.write("\\nLOADED "+JSON.stringify(process.moduleLoadList)))';
  const r = spawnSync(process.execPath, [...(builtins ? ['--import', hook] : []), ...args], { encoding: 'utf8', cwd: ROOT });
  const m = /\nLOADED (.*)$/.exec(r.stderr);
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, loaded: m ? (JSON.parse(m[1]) as string[]) : [] };
}

test('the bundled CLI runs every command, loads only what the command needs, and converts like qemu-img', async () => {
  const tmp = await makeTempDir('ploop-bundle-');
  try {
    const bundle = await buildBundle(tmp.dir);
    const help = node([bundle, '--help']);
    assert.equal(help.code, 0, help.stderr);
    for (const c of ['create', 'init', 'info', 'check', 'convert', 'read', 'write', 'map', 'snapshot', 'merge', 'delete', 'resize', 'replay', 'bench', 'demo', 'serve', 'boot']) {
      assert.match(help.stdout, new RegExp(`\\n  ${c} +\\S`), `--help lists ${c}`);
    }
    // Start-up: the lazy command imports keep the servers' and workers' built-ins out of a
    // convert, and child processes' out of a command that only reads (net is not listed: piped stdio is a net.Socket) (the module-per-command registry in src/cli/main.ts).
    const img = join(tmp.dir, 'in.hds');
    await qemuCreate(img, '12M', '1M');
    await qemuIo(img, [ioWrite(0x5a, 1 << 20, 5 << 20), ioWrite(0x33, 9 << 20, 4096)]);
    const out = join(tmp.dir, 'out.raw');
    const conv = node([bundle, 'convert', img, out], true);
    assert.equal(conv.code, 0, conv.stderr);
    for (const heavy of ['NativeModule http', 'NativeModule worker_threads']) {
      assert.ok(conv.loaded.length > 0 && !conv.loaded.includes(heavy), `convert loaded ${heavy}`);
    }
    // A writer locks its image through flock(1) (src/stores/node-lock.ts); a reader starts no child.
    assert.ok(conv.loaded.includes('NativeModule child_process'), 'convert locked its output');
    const info = node([bundle, 'info', img], true);
    assert.equal(info.code, 0, info.stderr);
    assert.ok(info.loaded.length > 0 && !info.loaded.includes('NativeModule child_process'), 'info loaded child_process');
    const theirs = await qemuConvertToRaw(img, join(tmp.dir, 'theirs.raw'));
    assert.ok(Buffer.compare(await readFile(out), theirs) === 0, 'bundle convert differs from qemu-img convert');
    // The runner pool's worker is an entry of the bundle, beside the chunk that starts it.
    const bench = node([bundle, 'bench', img, '--pattern', 'randread', '--count', '200', '--depth', '4', '--runners', '1', '--json'], true);
    assert.equal(bench.code, 0, bench.stderr);
    assert.ok(JSON.parse(bench.stdout).iops > 0);
    assert.ok(bench.loaded.includes('NativeModule worker_threads'), 'the runners did start workers');
    // --version comes from the package.json of the package the bundle belongs to.
    await writeFile(join(tmp.dir, 'package.json'), JSON.stringify({ name: 'ploop-wasm', version: '9.8.7-test', type: 'module' }));
    const version = node([bundle, '--version']);
    assert.equal(version.stdout, 'ploop-wasm 9.8.7-test\n', version.stderr);
  } finally {
    await tmp.cleanup();
  }
});

test('bin/ploop-wasm runs the bundle beside it only when the bundle is at least as new as itself', () => withTempDir(async (dir) => {
  // A copy of the build layout: <dir>/bin/ploop-wasm.js (the loader, compiled by esbuild here
  // like tsc would) and <dir>/bin/cli/ploop-wasm.js, a stand-in bundle that says who it is.
  await mkdir(join(dir, 'bin/cli'), { recursive: true });
  await mkdir(join(dir, 'src/cli'), { recursive: true });
  const esbuild = (await import('esbuild')) as typeof import('esbuild');
  await esbuild.build({ entryPoints: [join(ROOT, 'bin/ploop-wasm.ts')], outfile: join(dir, 'bin/ploop-wasm.js'), format: 'esm', platform: 'node', bundle: false, logLevel: 'silent' });
  await writeFile(join(dir, 'package.json'), '{"type":"module"}\n');
  await writeFile(join(dir, 'bin/cli/ploop-wasm.js'), 'console.log("bundle")\n');
  await writeFile(join(dir, 'src/cli/run.js'), 'console.log("modules")\n');
  const loader = join(dir, 'bin/ploop-wasm.js');
  const bundle = join(dir, 'bin/cli/ploop-wasm.js');
  await utimes(loader, new Date(1_000_000_000_000), new Date(1_000_000_000_000));
  await utimes(bundle, new Date(1_000_000_100_000), new Date(1_000_000_100_000));
  assert.equal(node([loader]).stdout.trim(), 'bundle', 'a bundle newer than the loader runs');
  await utimes(bundle, new Date(999_999_000_000), new Date(999_999_000_000));
  assert.equal(node([loader]).stdout.trim(), 'modules', 'an older bundle (a bare tsc since) is ignored');
  await rm(join(dir, 'bin/cli'), { recursive: true });
  assert.equal(node([loader]).stdout.trim(), 'modules', 'no bundle: the modules');
}));
