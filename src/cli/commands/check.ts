// SPDX-License-Identifier: MIT
import { NodeFileStore } from '../../stores/node-fs.js';
import { checkImage } from '../../engine/check.js';
import { parse, plural } from '../args.js';
import { stackDirOf, readStackDescriptor, warnOnStderr } from '../open.js';
import type { CheckReport } from '../../engine/check.js';
import type { Command } from '../command.js';

export const check: Command = {
  name: 'check',
  summary: 'check an image for corruption and leaks (and repair)',
  usage: `ploop-wasm check IMG|DIR [--repair] [--json]

  Finds: in-use flag still set (not closed cleanly), invalid data_off / ext_off, BAT entries
  pointing into the header/BAT area or past the end of the file, misaligned entries, clusters
  used twice, space leaked at the end of the file. Warnings (harmless to QEMU, refused by the
  ploop tools; they do not change the exit status): holes in the file (ranges no disk block
  backs, as a crash can leave them; the repair writes zeros over them) and a CIF_Empty flag
  that disagrees with the BAT.
  --repair  fix what is safe to fix (data is copied before the BAT changes) and say what was done
  --json    print the report as JSON
  A disk folder: every ploop delta of its stack is checked (--json prints an array of reports,
  each with its "file").
  Exit status: 0 clean (or everything repaired), 2 corruptions left, 3 only leaks left, 1 error.`,
  async run(argv) {
    const { values, positionals } = parse(argv, { repair: { type: 'boolean' }, json: { type: 'boolean' } }, { min: 1, max: 1, names: 'IMG' });
    if (values.help) return -1;
    const repair = !!values.repair;
    const dir = await stackDirOf(positionals[0]);
    if (!dir) {
      const report = await checkFile(positionals[0], repair);
      if (values.json) process.stdout.write(JSON.stringify(report) + '\n');
      else print(report, repair);
      return exitStatus(report);
    }
    // A repair writes the folder's deltas: it holds the folder's writer lock, as a writer does.
    const lock = repair ? await dir.lockForWriting() : null;
    if (lock?.warning) warnOnStderr(lock.warning);
    try {
      if (!repair) {
        const writer = await dir.writerWarning();
        if (writer) warnOnStderr(writer);
      }
      const chain = (await readStackDescriptor(dir)).chain.filter((d) => d.type !== 'Plain');
      const reports = [];
      for (const d of chain) {
        const report = { file: d.file, ...(await checkFile(dir.path(d.file), repair)) };
        reports.push(report);
        if (!values.json) {
          process.stdout.write(`== ${d.file}\n`);
          print(report, repair);
        }
      }
      if (values.json) process.stdout.write(JSON.stringify(reports) + '\n');
      return Math.max(...reports.map((r) => exitStatus(r)));
    } finally {
      await lock?.release();
    }
  },
};

async function checkFile(path: string, repair: boolean): Promise<CheckReport> {
  const store = await NodeFileStore.open(path, { writable: repair });
  for (const w of store.openWarnings) warnOnStderr(w);
  try {
    return await checkImage(store, { repair });
  } finally {
    await store.close();
  }
}

function exitStatus(report: CheckReport): number {
  if (report.corruptions > report.corruptionsFixed) return 2;
  if (report.leakedClusters > report.leaksFixed) return 3;
  return 0;
}

function print(report: CheckReport, repair: boolean): void {
  const lines: string[] = [];
  for (const f of report.findings) {
    // The tail leak's own words are qemu-img's ("space leaked at the end of the image N"): after
    // a "Leak" tag they said it twice, and N had no unit.
    const message = f.kind === 'leak' ? leakWords(report) : f.message;
    const tag = f.fixed ? 'Repairing' : f.severity === 'corruption' ? 'ERROR' : f.severity === 'warning' ? 'Warning:' : 'Leak:';
    lines.push(`${tag} ${message}`);
  }
  if (report.findings.length < report.corruptions + (report.leakedBytes ? 1 : 0)) lines.push(`... and more (${plural(report.corruptions, 'corruption')} in all)`);
  if (repair && (report.corruptionsFixed || report.leaksFixed)) {
    lines.push(`The following inconsistencies were found and repaired:\n\n    ${plural(report.leaksFixed, 'leaked cluster')}\n    ${plural(report.corruptionsFixed, 'corruption')}\n`);
  }
  const leftCorrupt = report.corruptions - report.corruptionsFixed;
  const leftLeaks = report.leakedClusters - report.leaksFixed;
  if (leftCorrupt === 0 && leftLeaks === 0) lines.push('No errors were found on the image.');
  else {
    if (leftCorrupt) lines.push(`\n${leftCorrupt === 1 ? '1 error was' : `${leftCorrupt} errors were`} found on the image.\nData may be corrupted, or further writes to the image may corrupt it.`);
    if (leftLeaks) lines.push(`\n${leftLeaks === 1 ? '1 leaked cluster was' : `${leftLeaks} leaked clusters were`} found on the image.\nThis means waste of disk space, but no harm to data.`);
  }
  const pct = (n: number) => (report.totalClusters ? ((100 * n) / report.totalClusters).toFixed(2) : '0.00');
  lines.push(`${report.allocatedClusters}/${report.totalClusters} = ${pct(report.allocatedClusters)}% allocated, ${report.allocatedClusters ? ((100 * report.fragmentedClusters) / report.allocatedClusters).toFixed(2) : '0.00'}% fragmented`);
  lines.push(`Image end offset: ${report.imageEndOffset}`);
  process.stdout.write(lines.join('\n') + '\n');
}

/** "1048576 bytes (1 cluster) past the end of the last cluster in use". */
function leakWords(report: CheckReport): string {
  return `${plural(report.leakedBytes, 'byte')} (${plural(report.leakedClusters, 'cluster')}) past the end of the last cluster in use, at byte ${report.imageEndOffset}`;
}
