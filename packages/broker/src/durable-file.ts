// Small files replaced atomically and durably: write `<path>.tmp`, fsync it, rename it over
// `path`, fsync the directory. After a crash the file holds the old bytes or the new ones, never a
// mix. Used for the broker's metadata and producer-state snapshots (both small, rarely written);
// the record data itself goes through the storage package.
import { open, rename } from 'node:fs/promises';
import { dirname } from 'node:path';

export async function writeFileDurably(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp`;
  const file = await open(tmp, 'w');
  try {
    await file.writeFile(data);
    await file.sync();
  } finally {
    await file.close();
  }
  await rename(tmp, path);
  await syncDir(dirname(path));
}

export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
