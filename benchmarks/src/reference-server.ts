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
// Run as a child process: `node reference-server.js <file> <none|always|serve>`; it prints
// `{"port":N}` on stdout once listening and exits on SIGTERM or when stdin closes.
import { closeSync, createReadStream, fsync, openSync, write } from 'node:fs';
import { createServer, type Socket } from 'node:net';

const [file, mode] = process.argv.slice(2);
if (!file || (mode !== 'none' && mode !== 'always' && mode !== 'serve')) {
  console.error('usage: reference-server <file> <none|always|serve>');
  process.exit(2);
}
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
    socket.pause();
    write(fd, data, 0, data.length, null, (err) => {
      socket.resume();
      if (err) throw err;
      if (mode === 'always') {
        unsynced.push({ socket, acks });
        maybeSync();
      } else {
        socket.write(acks.length === 1 ? acks[0]! : Buffer.concat(acks));
      }
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
