// SPDX-License-Identifier: MIT
// A drop zone for files (the inspector and the v86 page): highlighted while files are dragged
// over it, `onFiles` with what was dropped; a file dropped anywhere else on the page must not
// make the browser navigate away from it.

export function dropZone(zone: HTMLElement, onFiles: (files: File[]) => void): void {
  for (const type of ['dragenter', 'dragover'] as const) {
    zone.addEventListener(type, (ev) => {
      ev.preventDefault();
      zone.classList.add('over');
    });
  }
  zone.addEventListener('dragleave', () => zone.classList.remove('over'));
  zone.addEventListener('drop', (ev) => {
    ev.preventDefault();
    zone.classList.remove('over');
    onFiles(Array.from(ev.dataTransfer?.files ?? []));
  });
  window.addEventListener('dragover', (ev) => ev.preventDefault());
  window.addEventListener('drop', (ev) => ev.preventDefault());
}
