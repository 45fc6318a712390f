// The same-run reference of the paced latency rows: the same pacing (paced-send.ts) into
// reference-server.ts instead of a broker, one length-prefixed frame per record written at once,
// answered by the server after its write (`none`) or after a group-commit fsync covering it
// (`always`). What it measures is what this machine's loopback, event loop and disk allow a
// Node process that does nothing else: on a disk whose fsyncs stall, its p99 shows the stalls,
// and a broker's paced acks=all p99 cannot be read without it.
import type { Socket } from 'node:net';
import { openSocket } from './frame-driver.js';
import { type PacedOptions, pacedAckLatencies } from './paced-send.js';

/** A frame about the size of a one-record produce request of a 100 B value. */
const FRAME_BYTES = 180;
const ANSWER_BYTES = 14;

/** Paced frames to a reference server on `port`; returns each frame's time to its answer. */
export async function pacedReferenceLatencies(
  port: number,
  options: PacedOptions,
): Promise<number[]> {
  const socket: Socket = await openSocket(port);
  // Answers come back in order on one connection: a FIFO of the waiting sends.
  const waiting: Array<() => void> = [];
  let head = 0;
  let carry = 0;
  let failure: Error | undefined;
  const fail = (err: Error): void => {
    failure ??= err;
    for (let i = head; i < waiting.length; i++) waiting[i]!();
    waiting.length = 0;
    head = 0;
  };
  socket.on('data', (chunk: Buffer) => {
    carry += chunk.length;
    while (carry >= ANSWER_BYTES && head < waiting.length) {
      carry -= ANSWER_BYTES;
      waiting[head++]!();
    }
    if (head > 4096 && head * 2 > waiting.length) {
      waiting.splice(0, head);
      head = 0;
    }
  });
  socket.on('error', fail);
  socket.on('close', () => fail(new Error('reference server closed the connection')));
  const frame = Buffer.alloc(FRAME_BYTES, 108);
  frame.writeUInt32BE(FRAME_BYTES - 4, 0);
  try {
    const latencies = await pacedAckLatencies(
      () =>
        new Promise<void>((resolve) => {
          if (failure) return resolve();
          waiting.push(resolve);
          socket.write(frame);
        }),
      options,
    );
    if (failure) throw failure;
    return latencies;
  } finally {
    socket.removeAllListeners('close');
    socket.destroy();
  }
}
