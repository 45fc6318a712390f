// Benchmark harness: the result-row shape every suite writes, statistics, the human table and the
// results file. It measures nothing itself; suites in ./suites do, each against a reference
// measured in the same run (the machine is shared and noisy, so only same-run ratios compare).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** One line of `benchmarks/results/<suite>.json`. */
export interface ResultRow {
  readonly name: string;
  /** The median of `settings.runs` runs. */
  readonly value: number;
  readonly unit: string;
  /** The same-run baseline, in the same unit, when the suite has one. */
  readonly reference?: number;
  /** value / reference (or the inverse for lower-is-better units, as the suite states). */
  readonly ratio?: number;
  readonly settings: Readonly<Record<string, unknown>>;
}

export interface SuiteOptions {
  /** A short run for CI and smoke checks: fewer runs, smaller data. */
  readonly quick: boolean;
}

export interface Suite {
  readonly name: string;
  /** What it measures, what it leaves out, and which number to read first. */
  readonly description: string;
  run(options: SuiteOptions): Promise<ResultRow[]>;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError('median of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** The q-quantile (0..1) by nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) throw new RangeError('quantile of no values');
  if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile ${q} is outside 0..1`);
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank]!;
}

/**
 * Runs `body` `runs` times and returns the median of what it returns (for example records/s).
 * Runs alternate with `reference` when one is given, so both see the same machine weather.
 */
export async function medianOfRuns(
  runs: number,
  body: () => Promise<number> | number,
  reference?: () => Promise<number> | number,
): Promise<{ value: number; reference?: number; values: number[]; references: number[] }> {
  const values: number[] = [];
  const references: number[] = [];
  for (let i = 0; i < runs; i++) {
    if (reference) references.push(await reference());
    values.push(await body());
  }
  return reference
    ? { value: median(values), reference: median(references), values, references }
    : { value: median(values), values, references };
}

/** A row with `ratio = value / reference` filled in when a reference exists. */
export function row(
  name: string,
  value: number,
  unit: string,
  settings: Record<string, unknown>,
  reference?: number,
): ResultRow {
  if (reference === undefined) return { name, value, unit, settings };
  return { name, value, unit, reference, ratio: reference === 0 ? 0 : value / reference, settings };
}

function formatNumber(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toFixed(3);
}

/** The human table a suite prints. */
export function formatTable(rows: readonly ResultRow[]): string {
  const header = ['name', 'value', 'unit', 'reference', 'ratio'];
  const body = rows.map((r) => [
    r.name,
    formatNumber(r.value),
    r.unit,
    r.reference === undefined ? '' : formatNumber(r.reference),
    r.ratio === undefined ? '' : r.ratio.toFixed(2),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === 0 || i === 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!)))
      .join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...body.map(line)].join('\n');
}

export function writeResults(dir: string, suite: string, rows: readonly ResultRow[]): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${suite}.json`);
  writeFileSync(file, `${JSON.stringify(rows, null, 2)}\n`);
  return file;
}
