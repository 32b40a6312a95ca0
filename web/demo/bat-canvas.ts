// SPDX-License-Identifier: MIT
// The BAT as a picture: one cell per virtual cluster, coloured by the delta level that maps it
// (or as a hole). Drawn into ImageData, so millions of clusters cost one putImageData; when
// the clusters outnumber the pixels, one pixel stands for several clusters and shows the newest
// level that maps any of them (a hole only when all of them are holes), so that sparse data
// stays visible at any scale.

import type { Extent } from '../../src/browser.js';

export const HOLE = 0xff;
/** Hole, then levels 0, 1, 2, … (the palette repeats past its end). */
export const HOLE_RGB: [number, number, number] = [226, 232, 240];
export const LEVEL_RGB: Array<[number, number, number]> = [
  [37, 99, 235], [234, 88, 12], [22, 163, 74], [147, 51, 234], [219, 39, 119], [13, 148, 136], [202, 138, 4], [71, 85, 105],
];
export const levelRgb = (level: number): [number, number, number] => (level === HOLE ? HOLE_RGB : LEVEL_RGB[level % LEVEL_RGB.length]);
export const cssColor = ([r, g, b]: [number, number, number]) => `rgb(${r}, ${g}, ${b})`;

/** Level per virtual cluster (HOLE where nothing maps it), from the image's extents. */
export function clusterLevels(extents: Extent[], clusterBytes: number, clusterCount: number): Uint8Array {
  const levels = new Uint8Array(clusterCount).fill(HOLE);
  for (const e of extents) {
    if (e.level === HOLE) continue;
    levels.fill(e.level, Math.floor(e.offset / clusterBytes), Math.ceil((e.offset + e.length) / clusterBytes));
  }
  return levels;
}

export interface BatLayout {
  /** Cell edge in canvas pixels (1 when aggregated). */
  cellPx: number;
  columns: number;
  rows: number;
  /** Clusters shown by one cell (1 unless there are more clusters than pixels). */
  clustersPerCell: number;
}

/** Fit `clusters` cells into `widthPx` × at most `maxHeightPx`. */
export function layoutBat(clusters: number, widthPx: number, maxHeightPx: number): BatLayout {
  const width = Math.max(16, Math.floor(widthPx));
  let cellPx = Math.min(24, Math.floor(Math.sqrt((width * maxHeightPx) / Math.max(1, clusters))));
  if (cellPx >= 1) {
    const columns = Math.max(1, Math.floor(width / cellPx));
    return { cellPx, columns, rows: Math.ceil(clusters / columns), clustersPerCell: 1 };
  }
  cellPx = 1;
  const clustersPerCell = Math.ceil(clusters / (width * maxHeightPx));
  const cells = Math.ceil(clusters / clustersPerCell);
  return { cellPx, columns: width, rows: Math.ceil(cells / width), clustersPerCell };
}

/** Draw `levels` into `canvas` with `layout`; a grid gap of one pixel once cells are big enough to need it. */
export function drawBat(canvas: HTMLCanvasElement, levels: Uint8Array, layout: BatLayout): void {
  const { cellPx, columns, rows, clustersPerCell } = layout;
  canvas.width = columns * cellPx;
  canvas.height = Math.max(1, rows * cellPx);
  const ctx = canvas.getContext('2d');
  if (!ctx) return;
  const img = ctx.createImageData(canvas.width, canvas.height);
  const px = img.data;
  const gap = cellPx >= 6 ? 1 : 0;
  const cells = Math.ceil(levels.length / clustersPerCell);
  for (let cell = 0; cell < cells; cell++) {
    let level: number;
    if (clustersPerCell === 1) level = levels[cell];
    else {
      // The newest level mapping any of this cell's clusters.
      const from = cell * clustersPerCell;
      const to = Math.min(levels.length, from + clustersPerCell);
      let newest = -1;
      for (let i = from; i < to; i++) if (levels[i] !== HOLE && levels[i] > newest) newest = levels[i];
      level = newest < 0 ? HOLE : newest;
    }
    const [r, g, b] = levelRgb(level);
    const x0 = (cell % columns) * cellPx;
    const y0 = Math.floor(cell / columns) * cellPx;
    for (let y = y0; y < y0 + cellPx - gap; y++) {
      let p = (y * canvas.width + x0) * 4;
      for (let x = 0; x < cellPx - gap; x++, p += 4) {
        px[p] = r;
        px[p + 1] = g;
        px[p + 2] = b;
        px[p + 3] = 255;
      }
    }
  }
  ctx.putImageData(img, 0, 0);
}

/** The first cluster under canvas pixel (x, y), or -1 outside the cells. */
export function clusterAt(layout: BatLayout, clusterCount: number, x: number, y: number): number {
  const col = Math.floor(x / layout.cellPx);
  const row = Math.floor(y / layout.cellPx);
  if (col < 0 || col >= layout.columns || row < 0) return -1;
  const cluster = (row * layout.columns + col) * layout.clustersPerCell;
  return cluster < clusterCount ? cluster : -1;
}
