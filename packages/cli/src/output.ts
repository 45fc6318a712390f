// How the CLI talks to the user: human text by default, `--output json` as one JSON object per
// line, errors as one line `streambus: <message>` on stderr (exit 1; 2 for usage errors), and a
// progress line only when stdout is a terminal. No command prints any other way.
import { ErrorCode, StreamBusError } from '@streambus/client';

export type OutputFormat = 'human' | 'json';

export class UsageError extends Error {}

export function parseOutput(value: string): OutputFormat {
  if (value !== 'human' && value !== 'json') {
    throw new UsageError(`--output: expected human or json, got '${value}'`);
  }
  return value;
}

export class Output {
  constructor(
    readonly format: OutputFormat,
    private readonly stdout: NodeJS.WritableStream = process.stdout,
  ) {}

  get isJson(): boolean {
    return this.format === 'json';
  }

  /** A line of human text (nothing in json mode). */
  human(line: string): void {
    if (!this.isJson) this.stdout.write(`${line}\n`);
  }

  /** A JSON object on its own line (nothing in human mode). */
  json(value: unknown): void {
    if (this.isJson) this.stdout.write(`${JSON.stringify(value)}\n`);
  }

  /** Raw text in either mode. */
  write(text: string): boolean {
    return this.stdout.write(text);
  }
}

/** Progress on stderr, only when stdout is a terminal (never in pipes, files or tests). */
export class Progress {
  private readonly enabled: boolean;
  private lastMs = 0;
  private shown = false;
  constructor(private readonly label: string) {
    this.enabled = process.stdout.isTTY === true && process.stderr.isTTY === true;
  }

  update(count: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastMs < 200) return;
    this.lastMs = now;
    this.shown = true;
    process.stderr.write(`\r${this.label} ${count}`);
  }

  done(): void {
    if (this.shown) process.stderr.write('\r\x1b[K');
  }
}

/** The one-line message for an error, and the exit code it deserves. */
export function describeError(err: unknown): { message: string; exitCode: number } {
  if (err instanceof UsageError) return { message: err.message, exitCode: 2 };
  if (err instanceof StreamBusError) {
    let message = err.message;
    if (err.code === ErrorCode.NETWORK_EXCEPTION) {
      message += ' (is a broker running? start one with `streambus dev`)';
    }
    return {
      message: message.replace(/\s*\n\s*/g, ' '),
      exitCode: err.code === ErrorCode.INVALID_ARGUMENT ? 2 : 1,
    };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { message: message.replace(/\s*\n\s*/g, ' '), exitCode: 1 };
}
