// The broker suite's same-run reference: the least a Node process must do to accept produce
// frames durably. It reads length-prefixed frames from TCP, appends each frame's bytes to one
// file, and answers each with a 14-byte frame once the bytes are written (acks=1 shape) or once
// an fsync covering them has finished (acks=all shape: group commit, one fsync in flight, every
// frame that arrived meanwhile rides the next one). No validation, no offsets, no indexes: it is
// the floor our broker is compared against, not a broker.
//
// Mode `serve` is the consume reference instead: every connection is sent the whole file (1 MiB
// reads piped to the socket), then closed; the least a Node process must do to hand stored bytes
// to a reader over loopback.
//
// Modes `none-inline` and `always-inline` are the paced latency rows' reference: the same, but
// each arrival is written with `writeSync` on the main thread (no thread-pool hop before the
// fsync), the fewest steps between a frame arriving and its durable answer.
//
// Run as a child process: `node reference-server.js <file> <mode>`; it prints
// `{"port":N}` on stdout once listening and exits on SIGTERM or when stdin closes.
import { closeSync, createReadStream, fsync, openSync, write, writeSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';

const MODES = ['none', 'always', 'none-inline', 'always-inline', 'serve'];
const [file, modeArg] = process.argv.slice(2);
if (!file || !modeArg || !MODES.includes(modeArg)) {
  console.error(`usage: reference-server <file> <${MODES.join('|')}>`);
  process.exit(2);
}
const inline = modeArg.endsWith('-inline');
const mode = inline ? modeArg.slice(0, -'-inline'.length) : modeArg;
const fd = openSync(file, mode === 'serve' ? 'r' : 'a');

interface Pending {
  socket: Socket;
  acks: Buffer[];
}
// Frames written but not yet fsynced (mode 'always'), in order.
let unsynced: Pending[] = [];
let syncing = false;

function maybeSync(): void {
  if (syncing || unsynced.length === 0) return;
  syncing = true;
  const batch = unsynced;
  unsynced = [];
  fsync(fd, (err) => {
    syncing = false;
    if (err) throw err;
    for (const p of batch) if (!p.socket.destroyed) p.socket.write(Buffer.concat(p.acks));
    maybeSync();
  });
}

function ackFor(frame: Buffer): Buffer {
  const ack = Buffer.alloc(14);
  ack.writeUInt32BE(10, 0);
  frame.copy(ack, 4, 4, 12);
  ack.writeUInt16BE(1, 12);
  return ack;
}

function serveFile(socket: Socket): void {
  const stream = createReadStream(file!, { highWaterMark: 1024 * 1024 });
  stream.on('error', () => socket.destroy());
  socket.on('error', () => stream.destroy());
  stream.pipe(socket);
}

const server = createServer((socket) => {
  if (mode === 'serve') {
    serveFile(socket);
    return;
  }
  socket.setNoDelay(true);
  const written = (acks: Buffer[]): void => {
    if (mode === 'always') {
      unsynced.push({ socket, acks });
      maybeSync();
    } else {
      socket.write(acks.length === 1 ? acks[0]! : Buffer.concat(acks));
    }
  };
  let buffered: Buffer = Buffer.alloc(0);
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    const frames: Buffer[] = [];
    let pos = 0;
    while (buffered.length - pos >= 4) {
      const size = 4 + buffered.readUInt32BE(pos);
      if (buffered.length - pos < size) break;
      frames.push(buffered.subarray(pos, pos + size));
      pos += size;
    }
    buffered = buffered.subarray(pos);
    if (frames.length === 0) return;
    const data = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    const acks = frames.map(ackFor);
    if (inline) {
      writeSync(fd, data);
      written(acks);
      return;
    }
    socket.pause();
    write(fd, data, 0, data.length, null, (err) => {
      socket.resume();
      if (err) throw err;
      written(acks);
    });
  });
  socket.on('error', () => socket.destroy());
});

server.listen(0, '127.0.0.1', () => {
  const addr = server.address();
  if (addr && typeof addr === 'object') console.log(JSON.stringify({ port: addr.port }));
});

function stop(): void {
  server.close();
  closeSync(fd);
  process.exit(0);
}
process.on('SIGTERM', stop);
process.stdin.on('end', stop);
process.stdin.resume();
