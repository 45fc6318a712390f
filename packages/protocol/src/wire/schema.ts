// A small runtime schema for msgpack message bodies: each schema checks an `unknown` decoded
// value and returns it typed, or throws a StreamBusError INVALID_REQUEST whose message names the
// exact path and what was expected (`produce.topics[0].partitions[2].records: expected bytes`).
// Types are inferred from the schema (`Infer<typeof s>`), so a message's TypeScript type and its
// wire check cannot drift apart. Every string, byte string and array has a maximum length.
//
// It does not coerce, default or strip: unknown object keys are ignored (forward compatibility),
// missing required keys are errors, `optional` keys may be absent or undefined.
import { ErrorCode, StreamBusError } from '../errors.js';

export interface Schema<T> {
  readonly describe: string;
  check(value: unknown, path: string): T;
  /** Present only on optional() schemas: the key may be missing. */
  readonly optional?: true;
}

export type Infer<S> = S extends Schema<infer T> ? T : never;

function fail(path: string, expected: string, value: unknown): never {
  const got =
    value === null
      ? 'null'
      : Array.isArray(value)
        ? 'array'
        : value instanceof Uint8Array
          ? 'bytes'
          : typeof value;
  throw new StreamBusError(ErrorCode.INVALID_REQUEST, `${path}: expected ${expected}, got ${got}`);
}

/** An integer in [min, max] (both within the safe-integer range). */
export function int(min: number, max: number): Schema<number> {
  const describe = `an integer in ${min}..${max}`;
  return {
    describe,
    check(value, path) {
      if (typeof value !== 'number' || !Number.isInteger(value)) return fail(path, describe, value);
      if (value < min || value > max) {
        throw new StreamBusError(
          ErrorCode.INVALID_REQUEST,
          `${path}: ${value} is outside ${min}..${max}`,
        );
      }
      return value;
    },
  };
}

export const INT16_MAX = 0x7fff;
export const INT32_MAX = 0x7fffffff;
export const int16 = (): Schema<number> => int(-0x8000, INT16_MAX);
export const int32 = (): Schema<number> => int(-0x80000000, INT32_MAX);
/** int64 restricted to safe integers: offsets and timestamps never need more. */
export const int64 = (): Schema<number> => int(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER);
export const uint32 = (): Schema<number> => int(0, 0xffffffff);

export function bool(): Schema<boolean> {
  return {
    describe: 'a boolean',
    check(value, path) {
      if (typeof value !== 'boolean') return fail(path, 'a boolean', value);
      return value;
    },
  };
}

export function string(maxLength = 32_767): Schema<string> {
  const describe = `a string of at most ${maxLength} characters`;
  return {
    describe,
    check(value, path) {
      if (typeof value !== 'string') return fail(path, 'a string', value);
      if (value.length > maxLength) {
        throw new StreamBusError(
          ErrorCode.INVALID_REQUEST,
          `${path}: string of ${value.length} characters exceeds ${maxLength}`,
        );
      }
      return value;
    },
  };
}

/** Raw bytes. Decoded msgpack `bin` values arrive as Buffers viewing the frame: no copy. */
export function bytes(maxBytes = Number.MAX_SAFE_INTEGER): Schema<Buffer> {
  return {
    describe: 'bytes',
    check(value, path) {
      if (!(value instanceof Uint8Array)) return fail(path, 'bytes', value);
      if (value.length > maxBytes) {
        throw new StreamBusError(
          ErrorCode.INVALID_REQUEST,
          `${path}: ${value.length} bytes exceeds ${maxBytes}`,
        );
      }
      return Buffer.isBuffer(value)
        ? value
        : Buffer.from(value.buffer, value.byteOffset, value.length);
    },
  };
}

export function literal<const T extends string | number>(...allowed: T[]): Schema<T> {
  const describe = `one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`;
  return {
    describe,
    check(value, path) {
      if (!(allowed as unknown[]).includes(value)) return fail(path, describe, value);
      return value as T;
    },
  };
}

export function nullable<T>(inner: Schema<T>): Schema<T | null> {
  return {
    describe: `${inner.describe} or null`,
    check(value, path) {
      return value === null ? null : inner.check(value, path);
    },
  };
}

export function optional<T>(inner: Schema<T>): Schema<T | undefined> & { optional: true } {
  return {
    describe: `${inner.describe} (optional)`,
    optional: true,
    check(value, path) {
      return value === undefined ? undefined : inner.check(value, path);
    },
  };
}

export function array<T>(item: Schema<T>, maxItems = 100_000): Schema<T[]> {
  return {
    describe: `an array of ${item.describe}`,
    check(value, path) {
      if (!Array.isArray(value)) return fail(path, 'an array', value);
      if (value.length > maxItems) {
        throw new StreamBusError(
          ErrorCode.INVALID_REQUEST,
          `${path}: ${value.length} items exceeds ${maxItems}`,
        );
      }
      for (let i = 0; i < value.length; i++) item.check(value[i], `${path}[${i}]`);
      return value as T[];
    },
  };
}

/** A string-keyed map (msgpack map decoded as a plain object). */
export function dict<T>(valueSchema: Schema<T>, maxKeys = 10_000): Schema<Record<string, T>> {
  return {
    describe: `a map of ${valueSchema.describe}`,
    check(value, path) {
      if (typeof value !== 'object' || value === null || Array.isArray(value)) {
        return fail(path, 'a map', value);
      }
      if (value instanceof Uint8Array) return fail(path, 'a map', value);
      const keys = Object.keys(value);
      if (keys.length > maxKeys) {
        throw new StreamBusError(
          ErrorCode.INVALID_REQUEST,
          `${path}: ${keys.length} keys exceeds ${maxKeys}`,
        );
      }
      for (const k of keys)
        valueSchema.check((value as Record<string, unknown>)[k], `${path}.${k}`);
      return value as Record<string, T>;
    },
  };
}

type Shape = Record<string, Schema<unknown>>;
type OptionalKeys<S extends Shape> = {
  [K in keyof S]: S[K] extends { optional: true } ? K : never;
}[keyof S];
type RequiredKeys<S extends Shape> = Exclude<keyof S, OptionalKeys<S>>;
export type ObjectOf<S extends Shape> = { [K in RequiredKeys<S>]: Infer<S[K]> } & {
  [K in OptionalKeys<S>]?: Exclude<Infer<S[K]>, undefined>;
};

export function object<S extends Shape>(shape: S): Schema<ObjectOf<S>> {
  const entries = Object.entries(shape);
  return {
    describe: 'a map',
    check(value, path) {
      if (
        typeof value !== 'object' ||
        value === null ||
        Array.isArray(value) ||
        value instanceof Uint8Array
      ) {
        return fail(path, 'a map', value);
      }
      const v = value as Record<string, unknown>;
      for (const [key, schema] of entries) {
        const field = v[key];
        if (field === undefined && !schema.optional) {
          throw new StreamBusError(
            ErrorCode.INVALID_REQUEST,
            `${path}.${key}: missing (expected ${schema.describe})`,
          );
        }
        schema.check(field, `${path}.${key}`);
      }
      return value as ObjectOf<S>;
    },
  };
}
