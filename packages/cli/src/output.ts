// How the CLI talks to the user: human text by default, `--output json` as one JSON object per
// line, errors as one line `streambus: <message>` on stderr with an exit code (ExitCode below),
// and a progress line only when stdout is a terminal. No command prints any other way.
import { ErrorCode, StreamBusError } from '@streambus/protocol';

/**
 * The exit codes of every command, one rule: 2 when the invocation itself is wrong (unknown
 * command or option, a bad flag value, a bad configuration file or STREAMBUS_* variable) and
 * nothing was done; 1 when a valid command failed (broker unreachable, topic missing, request
 * refused by the broker, port in use, data directory not writable); 0 otherwise, including
 * --help, --version and a broker stopped by SIGTERM or Ctrl-C.
 */
export const ExitCode = { OK: 0, FAILED: 1, USAGE: 2 } as const;

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

/** Lines of a left-aligned text table: columns two spaces apart, the last one not padded. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.length ?? 0)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), ...rows.map(line)];
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
  if (err instanceof UsageError) return { message: err.message, exitCode: ExitCode.USAGE };
  // A broker configuration (flags, file, environment) refused before anything started.
  // (By name, the broker's config.ts ConfigError: importing the broker package here would load
  // its ~200 modules for every command; `broker start` loads it when it runs.)
  if (err instanceof StreamBusError && err.name === 'ConfigError')
    return { message: oneLine(err.message), exitCode: ExitCode.USAGE };
  if (err instanceof StreamBusError) {
    let message = err.message;
    if (err.code === ErrorCode.NETWORK_EXCEPTION) {
      message += ' (is a broker running? start one with `streambus dev`)';
    }
    return {
      message: oneLine(message),
      // INVALID_ARGUMENT: the client refused an option (a bad --bootstrap) before connecting.
      exitCode: err.code === ErrorCode.INVALID_ARGUMENT ? ExitCode.USAGE : ExitCode.FAILED,
    };
  }
  return {
    message: oneLine(err instanceof Error ? err.message : String(err)),
    exitCode: ExitCode.FAILED,
  };
}

function oneLine(message: string): string {
  return message.replace(/\s*\n\s*/g, ' ');
}
