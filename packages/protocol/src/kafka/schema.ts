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

export const int8 = prim(
  1,
  0,
  (r) => r.int8(),
  (w, v) => w.int8(v),
);
export const int16 = prim(
  2,
  0,
  (r) => r.int16(),
  (w, v) => w.int16(v),
);
export const int32 = prim(
  4,
  0,
  (r) => r.int32(),
  (w, v) => w.int32(v),
);
export const int64 = prim(
  8,
  0,
  (r) => r.int64(),
  (w, v) => w.int64(v),
);
export const bool = prim(
  1,
  false,
  (r) => r.bool(),
  (w, v) => w.bool(v),
);
export const uuid = prim(
  16,
  '00000000000000000000000000000000',
  (r) => r.uuid(),
  (w, v) => w.uuid(v),
);

function notNull(what: string): StreamBusError {
  return new StreamBusError(ErrorCode.INVALID_ARGUMENT, `${what} may not be null at this version`);
}

/** STRING / COMPACT_STRING, never null. */
export const string = prim<string>(
  1,
  '',
  (r, c) => (c.flexible ? r.compactString() : r.string()),
  (w, v, c) => {
    if (typeof v !== 'string') throw notNull('string');
    if (c.flexible) w.compactNullableString(v);
    else w.nullableString(v);
  },
);

/** A string that may be null from version `from` on (Kafka's nullableVersions). */
export function nullableString(from = 0): Type<string | null> {
  return prim<string | null>(
    1,
    null,
    (r, c) =>
      c.flexible ? r.compactNullableString(c.version >= from) : r.nullableString(c.version >= from),
    (w, v, c) => {
      if (v === null && c.version < from) throw notNull('string');
      if (c.flexible) w.compactNullableString(v);
      else w.nullableString(v);
    },
  );
}

/** BYTES / COMPACT_BYTES, never null. */
export const bytes = prim<Buffer>(
  1,
  Buffer.alloc(0),
  (r, c) => (c.flexible ? r.compactBytes() : r.bytes()),
  (w, v, c) => {
    if (!(v instanceof Uint8Array)) throw notNull('bytes');
    if (c.flexible) w.compactNullableBytes(v);
    else w.nullableBytes(v);
  },
);

/** Nullable bytes; `records` fields (raw RecordBatch bytes) use this and are never decoded. */
export function nullableBytes(from = 0): Type<Buffer | null> {
  return prim<Buffer | null>(
    1,
    null,
    (r, c) =>
      c.flexible ? r.compactNullableBytes(c.version >= from) : r.nullableBytes(c.version >= from),
    (w, v, c) => {
      if (v === null && c.version < from) throw notNull('bytes');
      if (c.flexible) w.compactNullableBytes(v);
      else w.nullableBytes(v);
    },
  );
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
