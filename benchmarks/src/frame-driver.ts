// A pipelined raw-frame load generator: sends the same prebuilt request frame `count` times over
// one TCP connection with at most `inflightMax` unanswered, and times it until the last answer.
// It does no encoding per request, so it measures the server, not a client library. Used for
// both our broker and the reference server (whose 14-byte answers parse as frames too).
import { connect, type Socket } from 'node:net';
import { FrameParser } from '@streambus/protocol';

export interface DriveResult {
  readonly seconds: number;
  readonly answered: number;
  /** Per-request latency in ms, when `recordLatency` was set. */
  readonly latenciesMs: number[];
}

export async function openSocket(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host, noDelay: true }, () => resolve(s));
    s.once('error', reject);
  });
}

/**
 * Sends `frames[i % frames.length]` `count` times. Every frame must be answered (no NO_RESPONSE
 * frames). `onAnswer` may inspect each answer (e.g. check an error code) and throw to abort.
 */
export async function driveFrames(
  socket: Socket,
  frames: readonly Buffer[],
  count: number,
  inflightMax: number,
  options: {
    recordLatency?: boolean;
    onAnswer?: (body: Buffer) => void;
    /** Splits the answer stream into answer frames (default: native frames, their bodies). */
    answers?: (chunk: Buffer) => Buffer[];
  } = {},
): Promise<DriveResult> {
  const parser = new FrameParser({ frameBytesMax: 256 * 1024 * 1024 });
  const split = options.answers ?? ((chunk: Buffer) => parser.push(chunk).map((f) => f.body));
  const sentAt: number[] = [];
  const latenciesMs: number[] = [];
  let sent = 0;
  let answered = 0;
  const start = process.hrtime.bigint();
  return new Promise<DriveResult>((resolve, reject) => {
    // The socket is reused across drives: every listener added here is removed when it ends.
    const detach = () => {
      socket.removeAllListeners('data');
      socket.removeListener('error', fail);
      socket.removeListener('close', onClose);
    };
    const fail = (err: unknown) => {
      detach();
      reject(err);
    };
    const onClose = () => {
      if (answered < count) fail(new Error(`connection closed after ${answered}/${count} answers`));
    };
    const pump = () => {
      let corked = false;
      while (sent < count && sent - answered < inflightMax) {
        if (!corked) {
          socket.cork();
          corked = true;
        }
        if (options.recordLatency) sentAt.push(performance.now());
        socket.write(frames[sent % frames.length]!);
        sent++;
      }
      if (corked) socket.uncork();
    };
    socket.on('data', (chunk: Buffer) => {
      let got: Buffer[];
      try {
        got = split(chunk);
        for (const body of got) options.onAnswer?.(body);
      } catch (err) {
        fail(err);
        return;
      }
      if (options.recordLatency) {
        const now = performance.now();
        for (let i = 0; i < got.length; i++) latenciesMs.push(now - sentAt[answered + i]!);
      }
      answered += got.length;
      if (answered >= count) {
        detach();
        const seconds = Number(process.hrtime.bigint() - start) / 1e9;
        resolve({ seconds, answered, latenciesMs });
        return;
      }
      pump();
    });
    socket.once('error', fail);
    socket.once('close', onClose);
    pump();
  });
}
