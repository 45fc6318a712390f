// Typed combinators that describe a Kafka message once and give both its decoder and its encoder,
// in the manner of Kafka's own message JSON (`clients/src/main/resources/common/message/*.json`):
// fields in wire order, each present in a version range, with strings, bytes and arrays taking
// their compact forms and every struct ending in a tagged-field section in flexible versions
// (KIP-482). Decoding a version that lacks a field gives the field's default; encoding skips it.
// Unknown tagged fields are kept raw in `_tags`, so a decoded message re-encodes to identical
// bytes. Record batches are never decoded here: `records` is a view of the raw bytes.

import { ErrorCode, StreamBusError } from '../errors.js';
import type { KafkaReader, TaggedField } from './reader.js';
import type { KafkaWriter } from './writer.js';

export interface Ctx {
  readonly version: number;
  readonly flexible: boolean;
}

export interface Type<T> {
  /** A lower bound of the encoded size, used to check counts against the bytes left. */
  readonly bytesMin: number;
  /** The value a field of this type takes in a version that lacks it. */
  readonly zero: T;
  read(r: KafkaReader, c: Ctx): T;
  write(w: KafkaWriter, v: T, c: Ctx): void;
}

export interface Versioned<T> {
  readonly versioned: true;
  readonly type: Type<T>;
  readonly min: number;
  readonly max: number;
  readonly dflt: T;
}

function prim<T>(
  bytesMin: number,
  zero: T,
  read: (r: KafkaReader, c: Ctx) => T,
  write: (w: KafkaWriter, v: T, c: Ctx) => void,
): Type<T> {
  return { bytesMin, zero, read, write };
}

type FixedName = 'int8' | 'int16' | 'int32' | 'int64';

/** A fixed-width integer: the reader and writer method of the same name. */
function fixed(name: FixedName, width: number): Type<number> {
  return prim(
    width,
    0,
    (r) => r[name](),
    (w, v) => {
      w[name](v);
    },
  );
}

export const int8 = fixed('int8', 1);
export const int16 = fixed('int16', 2);
export const int32 = fixed('int32', 4);
export const int64 = fixed('int64', 8);
export const bool = prim<boolean>(
  1,
  false,
  (r) => r.bool(),
  (w, v) => w.bool(v),
);
export const uuid = prim<string>(
  16,
  '00000000000000000000000000000000',
  (r) => r.uuid(),
  (w, v) => w.uuid(v),
);

function notNull(what: string): StreamBusError {
  return new StreamBusError(ErrorCode.INVALID_ARGUMENT, `${what} may not be null at this version`);
}

/**
 * A string or bytes type: `from` is the first version where null is allowed (Kafka's
 * nullableVersions; Infinity = never null). Flexible versions use the compact forms.
 */
function lengthPrefixed<T extends string | Buffer>(
  what: 'string' | 'bytes',
  zero: T | null,
  from: number,
): Type<T | null> {
  const isValue =
    what === 'string'
      ? (v: unknown) => typeof v === 'string'
      : (v: unknown) => v instanceof Uint8Array;
  return prim<T | null>(
    1,
    zero,
    (r, c) => {
      const nullable = c.version >= from;
      if (what === 'string') {
        return (
          c.flexible ? r.compactNullableString(nullable) : r.nullableString(nullable)
        ) as T | null;
      }
      return (
        c.flexible ? r.compactNullableBytes(nullable) : r.nullableBytes(nullable)
      ) as T | null;
    },
    (w, v, c) => {
      if (v === null ? c.version < from : !isValue(v)) throw notNull(what);
      if (what === 'string') {
        if (c.flexible) w.compactNullableString(v as string | null);
        else w.nullableString(v as string | null);
      } else if (c.flexible) w.compactNullableBytes(v as Buffer | null);
      else w.nullableBytes(v as Buffer | null);
    },
  );
}

const NEVER = Number.POSITIVE_INFINITY;

/** STRING / COMPACT_STRING, never null. */
export const string = lengthPrefixed<string>('string', '', NEVER) as Type<string>;

/** A string that may be null from version `from` on (Kafka's nullableVersions). */
export function nullableString(from = 0): Type<string | null> {
  return lengthPrefixed<string>('string', null, from);
}

/** BYTES / COMPACT_BYTES, never null. */
export const bytes = lengthPrefixed<Buffer>('bytes', Buffer.alloc(0), NEVER) as Type<Buffer>;

/** Nullable bytes; `records` fields (raw RecordBatch bytes) use this and are never decoded. */
export function nullableBytes(from = 0): Type<Buffer | null> {
  return lengthPrefixed<Buffer>('bytes', null, from);
}

export const records = nullableBytes(0);

function readArray<T>(r: KafkaReader, c: Ctx, e: Type<T>, nullable: boolean): T[] | null {
  const n = c.flexible
    ? r.compactArrayCount(e.bytesMin, nullable)
    : r.arrayCount(e.bytesMin, nullable);
  if (n === -1) return null;
  const out: T[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = e.read(r, c);
  return out;
}

function writeArray<T>(w: KafkaWriter, v: readonly T[] | null, c: Ctx, e: Type<T>): void {
  if (v === null) {
    if (c.flexible) w.uvarint(0);
    else w.int32(-1);
    return;
  }
  if (!Array.isArray(v)) throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, 'expected an array');
  if (c.flexible) w.uvarint(v.length + 1);
  else w.int32(v.length);
  for (const x of v) e.write(w, x, c);
}

export function array<T>(e: Type<T>): Type<T[]> {
  return prim<T[]>(
    1,
    [],
    (r, c) => readArray(r, c, e, false) as T[],
    (w, v, c) => {
      if (v === null) throw notNull('array');
      writeArray(w, v, c, e);
    },
  );
}

/** An array that may be null from version `from` on. */
export function nullableArray<T>(e: Type<T>, from = 0): Type<T[] | null> {
  return prim<T[] | null>(
    1,
    null,
    (r, c) => readArray(r, c, e, c.version >= from),
    (w, v, c) => {
      if (v === null && c.version < from) throw notNull('array');
      writeArray(w, v, c, e);
    },
  );
}

/** A field present in versions min..max (inclusive), `dflt` elsewhere. */
export function versions<T>(min: number, max: number, type: Type<T>, dflt?: T): Versioned<T> {
  return { versioned: true, type, min, max, dflt: dflt === undefined ? type.zero : dflt };
}

/** A field present from version `min` on. */
export function since<T>(min: number, type: Type<T>, dflt?: T): Versioned<T> {
  return versions(min, Number.POSITIVE_INFINITY, type, dflt);
}

type Entry = Type<unknown> | Versioned<unknown>;
// biome-ignore lint/suspicious/noExplicitAny: a spec's entries carry their own value types
type Spec = Record<string, Type<any> | Versioned<any>>;
type ValueOf<E> = E extends Versioned<infer T> ? T : E extends Type<infer T> ? T : never;

/** The decoded form of a struct spec; `_tags` holds unknown tagged fields (flexible versions). */
export type StructOf<S extends Spec> = { [K in keyof S]: ValueOf<S[K]> } & {
  _tags?: TaggedField[];
};

function asVersioned(e: Entry): Versioned<unknown> {
  return 'versioned' in e ? e : versions(0, Number.POSITIVE_INFINITY, e);
}

export function struct<S extends Spec>(spec: S): Type<StructOf<S>> {
  const fields = Object.entries(spec).map(([name, e]) => ({ name, ...asVersioned(e as Entry) }));
  let bytesMin = 0;
  for (const f of fields)
    if (f.min === 0 && f.max === Number.POSITIVE_INFINITY) bytesMin += f.type.bytesMin;
  const zero = {} as Record<string, unknown>;
  for (const f of fields) zero[f.name] = f.dflt;
  return {
    bytesMin: Math.max(1, bytesMin),
    zero: zero as StructOf<S>,
    read(r, c) {
      const out: Record<string, unknown> = {};
      for (const f of fields) {
        out[f.name] = c.version >= f.min && c.version <= f.max ? f.type.read(r, c) : f.dflt;
      }
      if (c.flexible) {
        const tags = r.taggedFields();
        if (tags.length > 0) out._tags = tags;
      }
      return out as StructOf<S>;
    },
    write(w, v, c) {
      if (v === null || typeof v !== 'object') {
        throw new StreamBusError(ErrorCode.INVALID_ARGUMENT, 'expected a struct');
      }
      const obj = v as Record<string, unknown>;
      for (const f of fields) {
        if (c.version < f.min || c.version > f.max) continue;
        const x = obj[f.name];
        if (x === undefined) {
          throw new StreamBusError(
            ErrorCode.INVALID_ARGUMENT,
            `field ${f.name} is required at version ${c.version}`,
          );
        }
        f.type.write(w, x, c);
      }
      if (c.flexible) w.taggedFields(v._tags);
    },
  };
}
