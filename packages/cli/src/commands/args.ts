// Argument parsers shared by every command, the broker's included: no client here, so
// `broker start` does not load the client package (bin.ts).
import { UsageError } from '../output.js';

export function parseIntArg(name: string, min: number, max = Number.MAX_SAFE_INTEGER) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
      throw new UsageError(`${name}: expected an integer in ${min}..${max}, got '${value}'`);
    }
    return n;
  };
}
