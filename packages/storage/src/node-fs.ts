// `FileSystem` over node:fs/promises. Thin: every method is one or two system calls, and every
// OS error becomes a KAFKA_STORAGE_ERROR naming the operation and the path (the OS error is the
// `cause`). It does not buffer, retry or cache anything.
import { constants, promises as fsp } from 'node:fs';
import type { FileHandle, FileStat, FileSystem, OpenMode } from './fs.js';
import { storageError } from './fs.js';

const FLAGS: Record<OpenMode, number> = {
  read: constants.O_RDONLY,
  readwrite: constants.O_RDWR,
  create: constants.O_RDWR | constants.O_CREAT,
  'create-new': constants.O_RDWR | constants.O_CREAT | constants.O_EXCL,
};

/** Linux caps one writev at IOV_MAX (1024) buffers. */
const IOV_MAX = 1024;

class NodeFileHandle implements FileHandle {
  constructor(
    readonly path: string,
    private readonly fh: fsp.FileHandle,
  ) {}

  async read(
    buffer: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ): Promise<number> {
    try {
      const { bytesRead } = await this.fh.read(buffer, offset, length, position);
      return bytesRead;
    } catch (err) {
      throw storageError('read', this.path, err);
    }
  }

  async write(data: Uint8Array, position: number): Promise<void> {
    try {
      let done = 0;
      while (done < data.length) {
        const { bytesWritten } = await this.fh.write(
          data,
          done,
          data.length - done,
          position + done,
        );
        done += bytesWritten;
      }
    } catch (err) {
      throw storageError('write', this.path, err);
    }
  }

  async writev(chunks: readonly Uint8Array[], position: number): Promise<void> {
    if (chunks.length === 1) return this.write(chunks[0]!, position);
    try {
      let pos = position;
      for (let i = 0; i < chunks.length; i += IOV_MAX) {
        const part = chunks.slice(i, i + IOV_MAX) as Uint8Array[];
        let total = 0;
        for (const c of part) total += c.length;
        const { bytesWritten } = await this.fh.writev(part, pos);
        if (bytesWritten < total) {
          // A short writev (rare: signals, quotas): finish the rest chunk by chunk.
          let skip = bytesWritten;
          let at = pos + bytesWritten;
          for (const c of part) {
            if (skip >= c.length) {
              skip -= c.length;
              continue;
            }
            const rest = c.subarray(skip);
            skip = 0;
            await this.write(rest, at);
            at += rest.length;
          }
        }
        pos += total;
      }
    } catch (err) {
      throw storageError('writev', this.path, err);
    }
  }

  async sync(): Promise<void> {
    try {
      await this.fh.sync();
    } catch (err) {
      throw storageError('fsync', this.path, err);
    }
  }

  async truncate(size: number): Promise<void> {
    try {
      await this.fh.truncate(size);
    } catch (err) {
      throw storageError('truncate', this.path, err);
    }
  }

  async size(): Promise<number> {
    try {
      return (await this.fh.stat()).size;
    } catch (err) {
      throw storageError('stat', this.path, err);
    }
  }

  async close(): Promise<void> {
    try {
      await this.fh.close();
    } catch (err) {
      throw storageError('close', this.path, err);
    }
  }
}

export class NodeFileSystem implements FileSystem {
  async open(path: string, mode: OpenMode): Promise<FileHandle> {
    try {
      return new NodeFileHandle(path, await fsp.open(path, FLAGS[mode], 0o644));
    } catch (err) {
      throw storageError('open', path, err);
    }
  }

  async readFile(path: string): Promise<Buffer> {
    try {
      return await fsp.readFile(path);
    } catch (err) {
      throw storageError('read', path, err);
    }
  }

  async rename(from: string, to: string): Promise<void> {
    try {
      await fsp.rename(from, to);
    } catch (err) {
      throw storageError('rename', `${from} -> ${to}`, err);
    }
  }

  async unlink(path: string): Promise<void> {
    try {
      await fsp.unlink(path);
    } catch (err) {
      throw storageError('unlink', path, err);
    }
  }

  async readdir(dir: string): Promise<string[]> {
    try {
      return (await fsp.readdir(dir)).sort();
    } catch (err) {
      throw storageError('readdir', dir, err);
    }
  }

  async mkdir(dir: string): Promise<void> {
    try {
      await fsp.mkdir(dir, { recursive: true });
    } catch (err) {
      throw storageError('mkdir', dir, err);
    }
  }

  async stat(path: string): Promise<FileStat | null> {
    try {
      const s = await fsp.stat(path);
      return { size: s.size, isDirectory: s.isDirectory() };
    } catch (err) {
      if ((err as { code?: unknown }).code === 'ENOENT') return null;
      throw storageError('stat', path, err);
    }
  }

  async truncate(path: string, size: number): Promise<void> {
    try {
      await fsp.truncate(path, size);
    } catch (err) {
      throw storageError('truncate', path, err);
    }
  }

  async syncDir(dir: string): Promise<void> {
    let fh: fsp.FileHandle | undefined;
    try {
      fh = await fsp.open(dir, constants.O_RDONLY);
      await fh.sync();
    } catch (err) {
      throw storageError('fsync-dir', dir, err);
    } finally {
      await fh?.close();
    }
  }
}
