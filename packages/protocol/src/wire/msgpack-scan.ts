// A pre-scan of msgpack bytes that walks the structure without building it, so a hostile body is
// refused before msgpackr allocates anything for it. msgpackr has no depth or length limits: one
// 16 MiB body of empty maps decodes into ~1 GiB of JS objects and blocks the event loop for
// seconds. The scan bounds, in one pass over the headers:
//   - the nesting depth of arrays and maps (`depthMax`),
//   - the declared length of each array and map (`lengthMax`, map entries count once),
//   - the total number of values (`elementsMax`),
//   - an estimate of the decoded size in bytes (`decodedBytesMax`), which the broker also charges
//     against the connection's budget (connection.ts).
// Strings, byte strings and extensions are skipped by their length in O(1): the record batches
// inside PRODUCE and FETCH bodies cost nothing beyond their header. The walk is iterative (a
// stack of remaining counts, at most `depthMax` deep), so hostile nesting cannot overflow the
// JS stack either.
//
// It checks structure only (types, lengths, truncation, trailing bytes); what the values mean is
// the schema's job (schema.ts). Every refusal is a StreamBusError INVALID_REQUEST whose message
// says which bound was hit.
//
// The decoded-size model (V8, 64-bit, measured with msgpackr 2.1 on 1 M-element bodies): each
// value takes an 8-byte slot in its parent; a map object ~56 bytes plus ~16 per entry, an array
// ~32, a float64 or 64-bit integer a 16-byte heap number, a byte string a ~96-byte Buffer view
// (no copy), a string ~16 bytes plus its length. The estimate is at or above what was measured
// for each kind (empty maps 64 B each, bin views 104 B each).
import { ErrorCode, StreamBusError } from '../errors.js';

export interface MsgpackLimits {
  /** Arrays and maps nested deeper than this are refused (the top-level value is depth 1). */
  readonly depthMax: number;
  /** An array or map declaring more items (map: entries) than this is refused. */
  readonly lengthMax: number;
  /** Values in the whole body (containers, keys and leaves). */
  readonly elementsMax: number;
  /** The decoded-size estimate may not exceed this. */
  readonly decodedBytesMax: number;
}

/** Generous defaults for any body (client responses included); the broker sets its own. */
export const MSGPACK_LIMITS_DEFAULT: MsgpackLimits = {
  depthMax: 32,
  lengthMax: 100_000,
  elementsMax: 4_000_000,
  decodedBytesMax: 256 * 1024 * 1024,
};

export interface MsgpackShape {
  readonly elements: number;
  readonly depth: number;
  /** Estimated bytes of the decoded JS value (see the model above). */
  readonly decodedBytes: number;
}

const SLOT_BYTES = 8;
const MAP_BYTES = 56;
const MAP_ENTRY_BYTES = 16;
const ARRAY_BYTES = 32;
const HEAP_NUMBER_BYTES = 16;
const BIN_VIEW_BYTES = 96;
const STRING_BYTES = 16;
const EXT_BYTES = 64;

function refuse(what: string, message: string): never {
  throw new StreamBusError(ErrorCode.INVALID_REQUEST, `${what}: ${message}`);
}

/** The big-endian length field of `width` (1, 2 or 4) bytes at `pos`, after a bounds check. */
function lengthAt(view: DataView, pos: number, width: number, what: string): number {
  if (pos + width > view.byteLength) refuse(what, `msgpack truncated at byte ${pos}`);
  return width === 1 ? view.getUint8(pos) : width === 2 ? view.getUint16(pos) : view.getUint32(pos);
}

/**
 * Walks `buf` as exactly one msgpack value and returns its shape, or throws INVALID_REQUEST
 * naming the bound that was hit (or the truncation / invalid byte found). `what` prefixes the
 * message (`produce`, `fetch response`).
 */
export function scanMsgpack(
  buf: Uint8Array,
  limits: MsgpackLimits = MSGPACK_LIMITS_DEFAULT,
  what = 'body',
): MsgpackShape {
  const len = buf.length;
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  // remaining[d]: values still to read at nesting level d (level 0 holds the top-level value).
  const remaining = new Float64Array(limits.depthMax + 1);
  remaining[0] = 1;
  let depth = 0;
  let depthSeen = 0;
  let pos = 0;
  let elements = 0;
  let decodedBytes = 0;
  for (;;) {
    while (remaining[depth] === 0) {
      if (depth === 0) {
        if (pos !== len) refuse(what, `${len - pos} trailing bytes after the msgpack value`);
        return { elements, depth: depthSeen, decodedBytes };
      }
      depth--;
    }
    remaining[depth]!--;
    if (pos >= len) refuse(what, `msgpack truncated at byte ${pos}`);
    elements++;
    if (elements > limits.elementsMax) {
      refuse(what, `more than ${limits.elementsMax} msgpack values`);
    }
    decodedBytes += SLOT_BYTES;
    const b = buf[pos]!;
    pos++;
    let skip = 0; // payload bytes after the type byte and length field
    let items = -1; // >= 0: a container with this many values below it
    let entries = 0; // map entries (for lengthMax and the size model)
    if (b <= 0x7f || b >= 0xe0) {
      // positive / negative fixint
    } else if (b <= 0x8f) {
      entries = b & 0x0f;
      items = entries * 2;
    } else if (b <= 0x9f) {
      items = b & 0x0f;
    } else if (b <= 0xbf) {
      skip = b & 0x1f;
      decodedBytes += STRING_BYTES + skip;
    } else {
      switch (b) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc4: // bin 8, 16, 32
        case 0xc5:
        case 0xc6:
          skip = lengthAt(view, pos, 1 << (b - 0xc4), what);
          pos += 1 << (b - 0xc4);
          decodedBytes += BIN_VIEW_BYTES;
          break;
        case 0xc7: // ext 8, 16, 32
        case 0xc8:
        case 0xc9:
          skip = lengthAt(view, pos, 1 << (b - 0xc7), what) + 1; // + the type byte
          pos += 1 << (b - 0xc7);
          decodedBytes += EXT_BYTES + skip;
          break;
        case 0xca: // float 32
          skip = 4;
          decodedBytes += HEAP_NUMBER_BYTES;
          break;
        case 0xcb: // float 64
        case 0xcf: // uint 64
        case 0xd3: // int 64
          skip = 8;
          decodedBytes += HEAP_NUMBER_BYTES;
          break;
        case 0xcc: // uint 8
        case 0xd0: // int 8
          skip = 1;
          break;
        case 0xcd: // uint 16
        case 0xd1: // int 16
          skip = 2;
          break;
        case 0xce: // uint 32
        case 0xd2: // int 32
          skip = 4;
          decodedBytes += HEAP_NUMBER_BYTES;
          break;
        case 0xd4: // fixext 1
        case 0xd5: // fixext 2
        case 0xd6: // fixext 4
        case 0xd7: // fixext 8
        case 0xd8: // fixext 16
          skip = 1 + (1 << (b - 0xd4));
          decodedBytes += EXT_BYTES + skip;
          break;
        case 0xd9: // str 8, 16, 32
        case 0xda:
        case 0xdb:
          skip = lengthAt(view, pos, 1 << (b - 0xd9), what);
          pos += 1 << (b - 0xd9);
          decodedBytes += STRING_BYTES + skip;
          break;
        case 0xdc: // array 16, 32
        case 0xdd:
          items = lengthAt(view, pos, 2 << (b - 0xdc), what);
          pos += 2 << (b - 0xdc);
          break;
        case 0xde: // map 16, 32
        case 0xdf: {
          const w = 2 << (b - 0xde);
          entries = lengthAt(view, pos, w, what);
          items = entries * 2;
          pos += w;
          break;
        }
        default: // 0xc1: never used
          refuse(what, `invalid msgpack byte 0x${b.toString(16)} at ${pos - 1}`);
      }
    }
    if (skip > 0) {
      if (skip > len - pos) refuse(what, `msgpack truncated at byte ${pos}`);
      pos += skip;
    }
    if (items >= 0) {
      const isMap = b <= 0x8f || b >= 0xde;
      const declared = isMap ? entries : items;
      if (declared > limits.lengthMax) {
        refuse(
          what,
          `msgpack ${isMap ? 'map of' : 'array of'} ${declared} ${isMap ? 'entries' : 'items'} exceeds ${limits.lengthMax}`,
        );
      }
      // Every value takes at least one byte: a container cannot hold more than what is left.
      if (items > len - pos) refuse(what, `msgpack truncated: ${items} values declared at ${pos}`);
      decodedBytes += isMap ? MAP_BYTES + MAP_ENTRY_BYTES * entries : ARRAY_BYTES;
      if (depth + 1 > limits.depthMax) {
        refuse(what, `msgpack nesting deeper than ${limits.depthMax}`);
      }
      if (depth + 1 > depthSeen) depthSeen = depth + 1;
      if (items > 0) {
        depth++;
        remaining[depth] = items;
      }
    }
    if (decodedBytes > limits.decodedBytesMax) {
      refuse(what, `decoded size over ${limits.decodedBytesMax} bytes`);
    }
  }
}
