// Boot sectors for the v86 tests, as machine code. nasm is not installed, so a few lines of
// 16-bit x86 are encoded here by hand, with a tiny label resolver for jumps, calls and data
// addresses (the encodings are noted next to each instruction).

const ORIGIN = 0x7c00;
export const SECTOR_BYTES = 512;

/** Boot sector 1 (docs/emulators.md): prints PLOOP-BOOT-OK\r\n on COM1 and halts. */
export const PRINT_SECTOR_TEXT = 'PLOOP-BOOT-OK\r\n';

export function printBootSector(): Uint8Array {
  const code = [
    0xfa, // cli
    0x31, 0xc0, // xor ax, ax
    0x8e, 0xd8, // mov ds, ax
    0xbe, 0x16, 0x7c, // mov si, 0x7c16 (the string)
    0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
    0xac, // loop: lodsb
    0x84, 0xc0, // test al, al
    0x74, 0x03, // jz done
    0xee, // out dx, al
    0xeb, 0xf8, // jmp loop
    0xf4, // done: hlt
    0xeb, 0xfd, // jmp done
  ];
  return sector([...code, ...ascii(PRINT_SECTOR_TEXT), 0]);
}

type Item = number | { rel8: string } | { rel16: string } | { abs16: string; plus?: number };

/** A minimal assembler: bytes, labels, and fix-ups resolved once the layout is known. */
class Asm {
  readonly items: Array<{ at: number; item: Item }> = [];
  readonly labels = new Map<string, number>();
  #pos = 0;

  emit(...items: Item[]): this {
    for (const item of items) {
      this.items.push({ at: this.#pos, item });
      this.#pos += typeof item === 'number' ? 1 : 'rel8' in item ? 1 : 2;
    }
    return this;
  }

  label(name: string): this {
    this.labels.set(name, this.#pos);
    return this;
  }

  bytes(): number[] {
    const out: number[] = [];
    const addr = (name: string) => {
      const v = this.labels.get(name);
      if (v === undefined) throw new Error(`boot sector: no label ${name}`);
      return v;
    };
    for (const { at, item } of this.items) {
      if (typeof item === 'number') out.push(item);
      else if ('rel8' in item) {
        const d = addr(item.rel8) - (at + 1);
        if (d < -128 || d > 127) throw new Error(`boot sector: jump to ${item.rel8} out of rel8 range`);
        out.push(d & 0xff);
      } else if ('rel16' in item) {
        const d = (addr(item.rel16) - (at + 2)) & 0xffff;
        out.push(d & 0xff, d >> 8);
      } else {
        const a = ORIGIN + addr(item.abs16) + (item.plus ?? 0);
        out.push(a & 0xff, a >> 8);
      }
    }
    return out;
  }
}

export const READ_LBA = 1;
export const WRITE_LBA = 2;

/** What the read/write boot sector prints, in plain words (a visitor of the v86 page reads it). */
export const SAMPLE_TITLE = 'ploop-wasm sample: this boot sector came from a ploop image.';
export const SAMPLE_SECTOR_1 = 'Sector 1 says: ';
export const SAMPLE_SECTOR_2 = 'Sector 2 says: ';
export const SAMPLE_EMPTY = 'nothing yet (first boot)';
/** What the boot sector writes to sector 2, and a later boot reads back. */
export const SAMPLE_WRITTEN = 'written by an earlier boot, kept in the image';
export const SAMPLE_DONE = 'Wrote sector 2. Boot again to read it back.';
export const SAMPLE_FAIL = 'Disk error (INT 13h).';

/**
 * Boot sector 2: INT 13h extended reads and a write through the BIOS, i.e. through the disk,
 * saying what it does on the screen (INT 10h teletype) and on COM1 alike:
 *
 *   ploop-wasm sample: this boot sector came from a ploop image.
 *   Sector 1 says: <LBA 1 as text>
 *   Sector 2 says: nothing yet (first boot)         (or: <LBA 2 as text>)
 *   Wrote sector 2. Boot again to read it back.
 *
 * The write puts SAMPLE_WRITTEN in LBA 2, so a boot after a persisted write shows
 * "Sector 2 says: written by an earlier boot, kept in the image". A failed INT 13h call prints
 * SAMPLE_FAIL and halts.
 */
export function readWriteBootSector(): Uint8Array {
  const a = new Asm();
  const int13 = (ah: number, dap: string) => a.emit(
    0xbe, { abs16: dap }, // mov si, dap
    0xb8, 0x00, ah, // mov ax, ah<<8 (AL = 0: write without verify)
    0x89, 0xea, // mov dx, bp (boot drive in DL)
    0xcd, 0x13, // int 0x13
    0x73, 0x03, // jnc +3
    0xe9, { rel16: 'fail' }, // jmp fail
  );
  const print = (label: string) => a.emit(0xbe, { abs16: label }, 0xe8, { rel16: 'print' }); // mov si, label; call print
  const printAt = (address: number) => a.emit(0xbe, address & 0xff, address >> 8, 0xe8, { rel16: 'print' });
  a.emit(
    0xfa, // cli
    0x31, 0xc0, // xor ax, ax
    0x8e, 0xd8, // mov ds, ax
    0x8e, 0xc0, // mov es, ax
    0x8e, 0xd0, // mov ss, ax
    0xbc, 0x00, 0x7c, // mov sp, 0x7c00
    0xfb, // sti
    0xfc, // cld
    0x89, 0xd5, // mov bp, dx (keep the boot drive)
  );
  print('msgTitle');
  int13(0x42, 'dapReadLba1');
  print('msgSector1');
  printAt(0x8200);
  int13(0x42, 'dapReadLba2');
  print('msgSector2');
  a.emit(0x80, 0x3e, 0x00, 0x80, 0x00); // cmp byte [0x8000], 0
  a.emit(0x75, { rel8: 'hasText' }); // jne hasText
  print('msgEmpty');
  a.emit(0xeb, { rel8: 'write' }); // jmp write
  a.label('hasText');
  printAt(0x8000);
  a.label('write').emit(
    0xbf, 0x00, 0x84, // mov di, 0x8400
    0xb9, 0x00, 0x02, // mov cx, 512
    0x31, 0xc0, // xor ax, ax
    0xf3, 0xaa, // rep stosb (a sector of zeros)
    0xbe, { abs16: 'msgWritten' }, // mov si, msgWritten
    0xbf, 0x00, 0x84, // mov di, 0x8400
    0xb9, SAMPLE_WRITTEN.length, 0x00, // mov cx, its length
    0xf3, 0xa4, // rep movsb (the text at its start)
  );
  int13(0x43, 'dapWriteLba2');
  print('msgDone');
  a.label('halt').emit(0xf4, 0xeb, { rel8: 'halt' }); // hlt; jmp halt
  a.label('fail');
  print('msgFail');
  a.emit(0xeb, { rel8: 'halt' });
  // Each character to COM1 and to the screen (INT 10h AH=0Eh: teletype output, page 0).
  a.label('print').emit(
    0xac, // lodsb
    0x84, 0xc0, // test al, al
    0x74, { rel8: 'printDone' }, // jz printDone
    0xba, 0xf8, 0x03, // mov dx, 0x3f8 (COM1)
    0xee, // out dx, al
    0xb4, 0x0e, // mov ah, 0x0e
    0xbb, 0x07, 0x00, // mov bx, 0x0007 (page 0, light grey)
    0xcd, 0x10, // int 0x10
    0xeb, { rel8: 'print' }, // jmp print
  ).label('printDone').emit(0xc3); // ret
  // Disk address packets: size 16, reserved, sector count (u16), buffer offset:segment, LBA (u64).
  const dap = (name: string, lba: number, buffer: number) => a.label(name).emit(0x10, 0, 1, 0, buffer & 0xff, buffer >> 8, 0, 0, lba, 0, 0, 0, 0, 0, 0, 0);
  dap('dapReadLba1', READ_LBA, 0x8200);
  dap('dapReadLba2', WRITE_LBA, 0x8000);
  dap('dapWriteLba2', WRITE_LBA, 0x8400);
  const crlf = [13, 10];
  a.label('msgTitle').emit(...ascii(SAMPLE_TITLE), ...crlf, 0);
  a.label('msgSector1').emit(...ascii(SAMPLE_SECTOR_1), 0);
  a.label('msgSector2').emit(...crlf, ...ascii(SAMPLE_SECTOR_2), 0);
  a.label('msgEmpty').emit(...ascii(SAMPLE_EMPTY), 0);
  a.label('msgDone').emit(...crlf, ...ascii(SAMPLE_DONE), ...crlf, 0);
  a.label('msgFail').emit(...crlf, ...ascii(SAMPLE_FAIL), ...crlf, 0);
  a.label('msgWritten').emit(...ascii(SAMPLE_WRITTEN), 0);
  return sector(a.bytes());
}

/** The text the tests put in LBA 1 (NUL-terminated in the sector). */
export const LBA1_TEXT = 'hello from the ploop image';

/** The read/write boot sector's whole output on a first boot, and on a boot after its write persisted. */
export const SAMPLE_FIRST_BOOT = `${SAMPLE_TITLE}\r\n${SAMPLE_SECTOR_1}${LBA1_TEXT}\r\n${SAMPLE_SECTOR_2}${SAMPLE_EMPTY}\r\n${SAMPLE_DONE}\r\n`;
export const SAMPLE_LATER_BOOT = `${SAMPLE_TITLE}\r\n${SAMPLE_SECTOR_1}${LBA1_TEXT}\r\n${SAMPLE_SECTOR_2}${SAMPLE_WRITTEN}\r\n${SAMPLE_DONE}\r\n`;

/** A raw disk of `sizeBytes` with `bootSector` at LBA 0 and LBA1_TEXT at LBA 1. */
export function rawBootDisk(bootSector: Uint8Array, sizeBytes = 4 << 20): Uint8Array {
  const disk = new Uint8Array(sizeBytes);
  disk.set(bootSector, 0);
  disk.set(ascii(LBA1_TEXT), READ_LBA * SECTOR_BYTES);
  return disk;
}

function ascii(text: string): number[] {
  return [...text].map((c) => c.charCodeAt(0));
}

function sector(code: number[]): Uint8Array {
  if (code.length > 510) throw new Error(`boot sector: ${code.length} bytes of code do not fit in 510`);
  const s = new Uint8Array(SECTOR_BYTES);
  s.set(code);
  s[510] = 0x55;
  s[511] = 0xaa;
  return s;
}
